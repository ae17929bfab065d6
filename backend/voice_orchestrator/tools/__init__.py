"""Tools the assistant may call mid-turn: HTTP endpoints and MCP servers (CONTRACT.md "Tools")."""
