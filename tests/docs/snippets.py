"""What the documentation names: code blocks, shell commands, settings variables, repository
paths, command-line invocations and make targets, read out of the Markdown."""

from __future__ import annotations

import itertools
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from voice_orchestrator.settings import Settings

from ..conftest import REPO

DOCS = (REPO / "README.md", REPO / "specs" / "quickstart.md")
# Files the documented commands write; they are not in the repository.
GENERATED = frozenset({"bench/results.json"})

_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_VARIABLE = re.compile(r"\b(?:ORCH|OPENAI)_[A-Z0-9_{},*…]*")
_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of ``doc``, dedented (a block may sit inside a list item)."""
    text = doc.read_text()
    return [
        Block(doc, text.count("\n", 0, m.start()) + 1, m.group(2), textwrap.dedent(m.group(3)))
        for m in _FENCE.finditer(text)
    ]


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks(doc)]


def inline_code(doc: Path) -> list[str]:
    """Every `code span` outside the fenced blocks."""
    return _INLINE.findall(_FENCE.sub("", doc.read_text()))


def commands(script: str) -> list[str]:
    """The shell commands of a script: continuation lines joined, comments and blanks left
    out."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def words(command: str) -> tuple[dict[str, str], list[str]]:
    """A command's leading VAR=value assignments and the rest of its words (up to a pipe)."""
    tokens = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while tokens and _ASSIGNMENT.match(tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    if "|" in tokens:
        tokens = tokens[: tokens.index("|")]
    return env, tokens


def cli_arguments(tokens: list[str]) -> list[str] | None:
    """The arguments of a ``voice-orchestrator`` invocation in any of its documented forms, or
    None when ``tokens`` is another command."""
    for prefix in (
        ["voice-orchestrator"],
        ["uv", "run", "voice-orchestrator"],
        ["python", "-m", "voice_orchestrator"],
    ):
        if tokens[: len(prefix)] == prefix:
            return tokens[len(prefix) :]
    return None


def documented_variables(text: str) -> set[str]:
    """Every ORCH_/OPENAI_ name in ``text``, with ``{STT,LLM,TTS}`` expanded; a name ending in
    ``_``, ``*`` or ``…`` stands for a prefix and keeps that ending."""
    names: set[str] = set()
    for match in _VARIABLE.findall(text):
        parts = re.split(r"\{([A-Z,]+)\}", match)
        choices = [part.split(",") if i % 2 else [part] for i, part in enumerate(parts)]
        names.update("".join(combo) for combo in itertools.product(*choices))
    return names


def settings_variables() -> set[str]:
    """The environment variables Settings reads."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
            continue
        names.update(_variables(f"ORCH_{name.upper()}", field.annotation))
    return names


def _variables(prefix: str, kind: object) -> set[str]:
    """``prefix`` itself, or one variable per field of a nested model (optional ones too)."""
    models = [
        k for k in (*get_args(kind), kind) if isinstance(k, type) and issubclass(k, BaseModel)
    ]
    if not models:
        return {prefix}
    return {
        name
        for sub, field in models[0].model_fields.items()
        for name in _variables(f"{prefix}__{sub.upper()}", field.annotation)
    }


def repository_paths(text: str) -> set[str]:
    """Tokens of ``text`` that name a file or folder under one of the repository's top-level
    folders (``tests/assets/question.wav``, ``specs/``)."""
    folders = "|".join(
        re.escape(p.name) for p in REPO.iterdir() if p.is_dir() and p.name not in {".git"}
    )
    pattern = re.compile(rf"(?<![\w/.-])((?:{folders})/[\w./*-]*)")
    return {m.rstrip(".,:;") for m in pattern.findall(text)} - GENERATED


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
