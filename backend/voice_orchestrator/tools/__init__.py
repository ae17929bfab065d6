"""Tools the assistant may call mid-turn: HTTP endpoints and MCP servers (CONTRACT.md "Tools")."""

from .base import ToolResult
from .config import ToolConfigError, check_tool_support
from .registry import Toolbox, load_toolbox

__all__ = ["ToolConfigError", "ToolResult", "Toolbox", "check_tool_support", "load_toolbox"]
