"""Caps on what the kernel publishes: stdout, stderr, results, displays and error text.

Capping here, before anything is sent, keeps a runaway print or a huge value from
flooding the ZMQ channels (a message over the host's cap costs the host its connection);
the host caps again for anything that slips past.
"""

from __future__ import annotations

import json
from typing import Any

from rlm_kernel import protocol


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters, ending in a note of how much was cut."""
    if len(text) <= limit:
        return text
    note = f"… [{len(text) - limit:,} characters cut]"
    return text[: max(limit - len(note), 0)] + note


def clip_lines(lines: list[Any], limit: int) -> list[str]:
    """A traceback's lines within `limit` characters in all."""
    kept: list[str] = []
    room = limit
    for line in map(str, lines):
        if len(line) > room:
            kept.append(clip(line, room))
            break
        kept.append(line)
        room -= len(line)
    return kept


class OutputCap:
    """Stops forwarding stdout/stderr after `limit` characters per execute.

    Capping here, before the text is published, keeps a runaway print from flooding the
    ZMQ channel; the host caps again for anything that slips past. It also skips flushes
    of streams nothing was written to: each flush is a round trip to ipykernel's IO
    thread, and an execute flushes both streams twice.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0

    def reset(self) -> None:
        self.used = 0
        self.dropped = 0

    def wrap(self, stream: Any) -> None:
        original_write, original_flush = stream.write, stream.flush
        dirty = False

        def write(text: str) -> int:
            nonlocal dirty
            room = self.limit - self.used
            if len(text) > room:
                self.dropped += len(text) - max(room, 0)
                if room > 0:
                    dirty = True
                    original_write(text[:room])
                    self.used = self.limit
                return len(text)
            self.used += len(text)
            dirty = True
            return original_write(text)

        def flush(*args: Any) -> None:
            nonlocal dirty
            if dirty:
                dirty = False
                original_flush(*args)

        stream.write = write
        stream.flush = flush

    def take(self, text: str) -> str:
        """Count `text` against this execute's budget; return the part that fits."""
        room = max(self.limit - self.used, 0)
        if len(text) > room:
            self.dropped += len(text) - room
            text = text[:room]
        self.used += len(text)
        return text

    def bundle(self, data: Any) -> Any:
        """A display's mime bundle within the caps: text/plain shares stdout's budget, and
        rich data (images, HTML) is kept up to protocol.RICH_DISPLAY_LIMIT characters."""
        if not isinstance(data, dict):
            return data
        capped: dict[str, Any] = {}
        rich = 0
        for mime, value in data.items():
            if mime == "text/plain" and isinstance(value, str):
                capped[mime] = self.take(value)
                continue
            size = len(value) if isinstance(value, str | bytes) else len(json.dumps(value))
            if rich + size > protocol.RICH_DISPLAY_LIMIT:
                self.dropped += size
                continue
            rich += size
            capped[mime] = value
        return capped

    def wrap_display(self, publisher: Any, method: str) -> None:
        """Cap the mime bundle `publisher.method(data, ...)` takes as its first argument."""
        original = getattr(publisher, method)

        def capped(data: Any, *args: Any, **kwargs: Any) -> Any:
            return original(self.bundle(data), *args, **kwargs)

        setattr(publisher, method, capped)
