"""Watching how much work a real engine does, by counting instead of timing.

Each embedded engine pulls its output lazily from its model (Whisper segments, llama.cpp
tokens, Piper sentences). ``Watched`` wraps the model object and records every pull: whether it
began after the test's ``mark()`` (say, a cancel) and whether the output ran to its end. The
model still does all the real work; nothing is replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pull:
    after_mark: bool
    item: Any


@dataclass
class Output:
    """What one call of the model produced, pull by pull."""

    pulls: list[Pull] = field(default_factory=list)
    exhausted: bool = False  # the model's iterator ran to its end
    closed: bool = False  # the engine let go of the iterator (ended or abandoned)


class Watched:
    """Delegates to ``model``; ``method``'s lazy output is recorded in ``outputs``.

    ``method`` returns an iterator, or a tuple whose first element is one (faster-whisper's
    ``transcribe``). ``first`` is set on the event loop when the first item of a call arrives.
    """

    def __init__(self, model: Any, method: str, loop: asyncio.AbstractEventLoop) -> None:
        self._model = model
        self._method = method
        self._loop = loop
        self.outputs: list[Output] = []
        self.marked = False
        self.first = asyncio.Event()

    def mark(self) -> None:
        self.marked = True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._model, name)
        if name != self._method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if isinstance(result, tuple):
                return (self._watch(result[0]), *result[1:])
            return self._watch(result)

        return call

    def _watch(self, items: Any) -> Iterator[Any]:
        output = Output()
        self.outputs.append(output)
        iterator = iter(items)
        try:
            while True:
                after_mark = self.marked  # noted before the (possibly long) pull starts
                try:
                    item = next(iterator)
                except StopIteration:
                    output.exhausted = True
                    return
                output.pulls.append(Pull(after_mark, item))
                self._loop.call_soon_threadsafe(self.first.set)
                yield item
        finally:
            output.closed = True
