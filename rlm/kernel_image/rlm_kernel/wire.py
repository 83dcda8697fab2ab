"""Jupyter wire messages read and written for the hot path, without jupyter_client's Session.

Session builds each message as four dicts, serialises each with a `default` hook, makes a
header with a datetime that clients parse back with dateutil, and parses every received
date the same way: a quarter of a short execute's time in the kernel. This codec writes
the same wire format (identities, `<IDS|MSG>`, HMAC of header, parent header, metadata and
content, then those four JSON frames) with the header from a template, dates as ISO
strings, and the parent header as the very bytes of the request's header. It shares the
kernel Session's key, session id and replay history, so a message is accepted or refused
the same way whichever path reads it.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DELIM = b"<IDS|MSG>"
_HEADER = (
    '{"msg_id": "%s%d", "msg_type": "%s", "username": %s, "session": %s, '
    '"date": "%s", "version": "%s"}'
)


def now() -> str:
    """The current time as Jupyter writes dates: ISO 8601 in UTC with a `Z`."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Request:
    """A verified request: its routing identities, its header (as received and parsed)
    and its still-packed metadata and content."""

    idents: list[bytes]
    raw_header: bytes
    header: dict[str, Any]
    signature: bytes
    parts: list[bytes]

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    def message(self, content: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        """The request as a Session-style dict: what ipykernel's set_parent and the
        display machinery read (they use its header as the parent of their messages)."""
        return {
            "header": self.header,
            "msg_id": self.header.get("msg_id"),
            "msg_type": self.msg_type,
            "parent_header": {},
            "metadata": metadata,
            "content": content,
            "buffers": [],
        }


class Wire:
    """Reads and writes messages signed like `session` (a jupyter_client Session)."""

    def __init__(self, session: Any, protocol_version: str) -> None:
        self._session = session
        key = session.key
        self._auth = hmac.new(key, digestmod=session.digest_mod) if key else None
        self._pack = session.pack
        self._username = json.dumps(session.username)
        self._session_id = json.dumps(session.session)
        self._id_prefix = f"{session.session}_{os.getpid()}_r"
        self._count = 0
        self._version = protocol_version

    def sign(self, parts: list[bytes]) -> bytes:
        if self._auth is None:
            return b""
        digest = self._auth.copy()
        for part in parts:
            digest.update(part)
        return digest.hexdigest().encode()

    def read(self, frames: list[bytes]) -> Request | None:
        """The request in `frames` if its signature holds and it is not a replay, else None.

        The signature is not yet recorded: `accept` does that once the request is handled
        here, so a request passed on to Session is not refused there as a duplicate.
        """
        try:
            split = frames.index(DELIM)
        except ValueError:
            return None
        idents, parts = frames[:split], frames[split + 1 :]
        if len(parts) < 5:
            return None
        signature = parts[0]
        if self._auth is not None:
            if not signature or signature in self._session.digest_history:
                return None
            if not hmac.compare_digest(signature, self.sign(parts[1:5])):
                return None
        try:
            header = json.loads(parts[1])
        except ValueError:
            return None
        if not isinstance(header, dict):
            return None
        return Request(idents, parts[1], header, signature, parts)

    def accept(self, request: Request) -> None:
        """Record the request's signature: the same message is refused from now on."""
        if self._auth is not None:
            self._session._add_digest(request.signature)

    def encode(
        self,
        msg_type: str,
        content: bytes,
        parent_header: bytes,
        metadata: bytes = b"{}",
        idents: list[bytes] | bytes = (),  # type: ignore[assignment]
    ) -> list[bytes]:
        """The frames of a message; `content` and `metadata` already packed (JSON)."""
        self._count += 1
        header = (
            _HEADER
            % (
                self._id_prefix,
                self._count,
                msg_type,
                self._username,
                self._session_id,
                now(),
                self._version,
            )
        ).encode()
        body = [header, parent_header, metadata, content]
        frames = [idents] if isinstance(idents, bytes) else list(idents)
        frames += [DELIM, self.sign(body), *body]
        return frames

    def pack(self, value: Any) -> bytes:
        """JSON as Session writes it (dates, bytes and numpy scalars handled)."""
        return self._pack(value)
