"""Writes the app's OpenAPI schema as YAML: ``python -m voice_orchestrator.openapi [PATH]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .main import create_app
from .settings import Settings


def schema() -> dict[str, Any]:
    """The schema of the app; building it loads no engine (the lifespan does not run)."""
    return create_app(Settings(_env_file=None)).openapi()


def dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("specs/openapi.yaml")
    target.write_text(dump(schema()))


if __name__ == "__main__":
    main()
