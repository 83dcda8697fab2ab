"""Signed messages of the llm_query callback channel.

A message is three ZMQ frames: [PROTOCOL, signature, payload]. The payload is JSON; the
signature is its HMAC-SHA256 under the sandbox's key. A verified signature is remembered,
so a replayed message is rejected (each payload carries a random id, so signatures never
repeat legitimately).

The kernel keeps an identical copy in rlm/kernel_image/rlm_kernel/wire.py, because the
kernel runtime imports nothing from the host package (and the host never imports the
runtime); a test checks the two copies are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from typing import Any

PROTOCOL = b"rlm-callback/1"
REPLAY_HISTORY = 1 << 16


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def pack(self, message: dict[str, Any]) -> list[bytes]:
        payload = json.dumps(message, separators=(",", ":")).encode()
        return [PROTOCOL, hmac.new(self._key, payload, hashlib.sha256).digest(), payload]

    def unpack(self, frames: list[bytes]) -> dict[str, Any]:
        """Verify and decode; ValueError for anything unsigned, forged, replayed or malformed."""
        if len(frames) != 3 or frames[0] != PROTOCOL:
            raise ValueError("not a signed rlm callback message")
        signature, payload = frames[1], frames[2]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise ValueError("invalid signature")
        if signature in self._seen:
            raise ValueError("replayed message")
        self._seen.add(signature)
        self._order.append(signature)
        if len(self._order) > REPLAY_HISTORY:
            self._seen.discard(self._order.popleft())
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise ValueError("malformed message")
        return message
