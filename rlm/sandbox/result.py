"""What one execute returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class CappedText:
    """Keeps the first `limit` characters and counts the rest, so output never piles up."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        room = self.limit - self._size
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            self._parts.append(text)
            self._size += len(text)

    @property
    def text(self) -> str:
        return "".join(self._parts)


@dataclass
class ExecuteError:
    name: str
    value: str
    traceback: str


@dataclass
class ExecuteResult:
    """Output of one code block.

    `results` holds the text of execute_result / display_data outputs. `dropped_chars`
    counts output characters cut by the caps (in the kernel and on the host). `timed_out`
    means the code ran past its timeout and was interrupted; `restarted` means the kernel
    had to be restarted (state lost), after a timeout it ignored or after it died.
    `finish` says how `final` was given ("final", "final_var", "answer_dict"); None from
    a kernel older than that field.
    """

    stdout: str = ""
    stderr: str = ""
    results: list[str] = field(default_factory=list)
    error: ExecuteError | None = None
    final: str | None = None
    finish: str | None = None
    duration: float = 0.0
    dropped_chars: int = 0
    timed_out: bool = False
    restarted: bool = False
    restored_names: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> bool:
        return self.dropped_chars > 0
