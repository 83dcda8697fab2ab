"""Kernel side of the llm_query callback channel.

Requests are signed messages (see protocol.py) sent over a ZMQ DEALER socket to the host's
ROUTER. Each thread gets its own socket, so user code calling llm_query from several
threads is served concurrently by the host.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import zmq

from rlm_kernel.protocol import CallbackConfig, Signer


class LLMQueryError(RuntimeError):
    """The host could not answer an llm_query call (its message says why)."""


class CallbackClient:
    def __init__(self, endpoint: str, config: CallbackConfig, timeout: float) -> None:
        self._endpoint = endpoint
        self._key = config.key.encode()
        self._timeout = timeout
        self._max_message_bytes = config.max_message_bytes
        self.max_batch_prompts = config.max_batch_prompts
        self._context = zmq.Context.instance()
        self._local = threading.local()

    @classmethod
    def from_file(cls, path: str, endpoint: str, timeout: float) -> CallbackClient:
        with open(path, encoding="utf-8") as f:
            return cls(endpoint, CallbackConfig.from_json(f.read()), timeout)

    def _channel(self) -> tuple[zmq.Socket, Signer]:
        channel = getattr(self._local, "channel", None)
        if channel is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(self._endpoint)
            channel = self._local.channel = (socket, Signer(self._key))
        return channel

    def call(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; raise LLMQueryError on failure or timeout."""
        socket, signer = self._channel()
        request_id = os.urandom(12).hex()
        frames = signer.pack({"id": request_id, "type": kind, **body})
        size = sum(len(frame) for frame in frames)
        if size > self._max_message_bytes:
            # The host would drop it unread; say why now instead of timing out.
            raise LLMQueryError(
                f"{kind}: the request is {size:,} bytes, over the limit of "
                f"{self._max_message_bytes:,}; send smaller prompts or fewer at once"
            )
        socket.send_multipart(frames)
        deadline = time.monotonic() + self._timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not socket.poll(remaining * 1000):
                raise LLMQueryError(f"{kind}: no answer from the host in {self._timeout:g} s")
            try:
                reply = signer.unpack(socket.recv_multipart())
            except ValueError:
                continue  # not from the host: ignore it
            # A reply to an earlier request that timed out: drop it and keep waiting.
            if reply.get("re") == request_id:
                break
        if reply.get("status") != "ok":
            raise LLMQueryError(reply.get("error", "unknown error"))
        return reply
