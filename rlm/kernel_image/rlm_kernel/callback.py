"""Kernel side of the llm_query callback channel.

Each request is a Jupyter-style message signed with the sandbox's key (jupyter_client's
Session does the HMAC and the replay check) sent over a ZMQ DEALER socket to the host's
ROUTER. Each thread gets its own socket and Session, so user code calling llm_query from
several threads is served concurrently by the host.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import zmq
from jupyter_client.session import Session


class LLMQueryError(RuntimeError):
    """The host could not answer an llm_query call (its message says why)."""


class CallbackClient:
    def __init__(self, endpoint: str, key: bytes, timeout: float) -> None:
        self._endpoint = endpoint
        self._key = key
        self._timeout = timeout
        self._context = zmq.Context.instance()
        self._local = threading.local()

    @classmethod
    def from_file(cls, path: str, timeout: float) -> CallbackClient:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        # The socket's name is relative to the config file: host and container see the
        # same directory under different paths.
        socket_path = os.path.join(os.path.dirname(os.path.abspath(path)), config["endpoint"])
        return cls(f"ipc://{socket_path}", config["key"].encode(), timeout)

    def _channel(self) -> tuple[zmq.Socket, Session]:
        channel = getattr(self._local, "channel", None)
        if channel is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(self._endpoint)
            session = Session(key=self._key, signature_scheme="hmac-sha256", username="kernel")
            channel = self._local.channel = (socket, session)
        return channel

    def call(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; raise LLMQueryError on failure or timeout."""
        socket, session = self._channel()
        request = session.send(socket, msg_type, content)
        deadline = time.monotonic() + self._timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not socket.poll(remaining * 1000):
                raise LLMQueryError(f"{msg_type}: no answer from the host in {self._timeout:g} s")
            _, frames = session.feed_identities(socket.recv_multipart(copy=False), copy=False)
            reply = session.deserialize(frames, content=True, copy=False)
            # A reply to an earlier request that timed out: drop it and keep waiting.
            if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                break
        body = reply["content"]
        if body.get("status") != "ok":
            raise LLMQueryError(body.get("error", "unknown error"))
        return body
