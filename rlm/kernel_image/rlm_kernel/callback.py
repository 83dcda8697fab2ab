"""Kernel side of the llm_query callback channel.

Requests are signed frames (see protocol.py) written to the host's unix socket. Each thread
gets its own connection, so user code calling llm_query from several threads is served
concurrently by the host. The socket is blocking and read by the calling thread itself: a
round trip wakes one thread on each side and nothing else.
"""

from __future__ import annotations

import array
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rlm_kernel.protocol import CallbackConfig, FrameReader, Signer

# How long a caller polls for the reply before it sleeps in recv(). On a VM a thread that
# sleeps is woken on another core by an inter-processor interrupt and a halted vCPU's
# return, which doubled the round trip whenever kernel and host ran on different cores
# (pinned: 0.093-0.113 against 0.053-0.055 ms on one core). The host answers a zero-latency
# sub-call within this; a model that takes longer costs the caller this much CPU once.
SPIN_S = 200e-6
FD_BYTES = array.array("i").itemsize


class LLMQueryError(RuntimeError):
    """The host could not answer an llm_query call (its message says why)."""


@dataclass
class _Connection:
    sock: socket.socket
    signer: Signer
    reader: FrameReader
    pid: int  # a forked child must not share its parent's connection
    # Request ids: a random prefix per connection and a count make every request (and so
    # its signature, which the host checks for replays) unique, for a random draw per
    # connection rather than per call.
    prefix: str = field(default_factory=lambda: os.urandom(8).hex())
    count: Iterator[int] = field(default_factory=itertools.count)

    def next_id(self) -> str:
        return f"{self.prefix}{next(self.count)}"


class CallbackClient:
    def __init__(self, path: str, config: CallbackConfig, timeout: float) -> None:
        self._path = path
        self._key = config.key.encode()
        self._timeout = timeout
        self._max_message_bytes = config.max_message_bytes
        self.max_batch_prompts = config.max_batch_prompts
        self._local = threading.local()

    @classmethod
    def from_file(cls, path: str, socket_path: str, timeout: float) -> CallbackClient:
        with open(path, encoding="utf-8") as f:
            return cls(socket_path, CallbackConfig.from_json(f.read()), timeout)

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.pid != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._path)
                # The kernel enforces the timeout on the blocking socket: Python's own
                # (settimeout) would add a poll() before every send and receive.
                limit = struct.pack("ll", int(self._timeout), int(self._timeout % 1 * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            except OSError as exc:
                sock.close()
                raise LLMQueryError(f"cannot reach the host's callback channel: {exc}") from None
            connection = _Connection(sock, Signer(self._key), FrameReader(), os.getpid())
            self._local.connection = connection
        return connection

    def _drop(self, connection: _Connection) -> None:
        # After a timeout or an error the stream may be mid-frame: start afresh next time.
        connection.sock.close()
        self._local.connection = None

    def call(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; raise LLMQueryError on failure or timeout."""
        return self._call(kind, body, None)

    def call_for_fd(self, kind: str, body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """`call` for a reply that may carry a file descriptor, which the caller closes."""
        fds: list[int] = []
        try:
            reply = self._call(kind, body, fds)
            if len(fds) > 1:
                raise LLMQueryError(f"{kind}: the reply carried {len(fds)} descriptors")
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return reply, fds[0] if fds else None

    def _call(self, kind: str, body: dict[str, Any], fds: list[int] | None) -> dict[str, Any]:
        connection = self._connection()
        request_id = connection.next_id()
        frame = connection.signer.pack({"id": request_id, "type": kind, **body})
        if len(frame) > self._max_message_bytes:
            # The host would drop the connection unread; say why now instead.
            raise LLMQueryError(
                f"{kind}: the request is {len(frame):,} bytes, over the limit of "
                f"{self._max_message_bytes:,}; send smaller prompts or fewer at once"
            )
        try:
            reply = self._exchange(connection, frame, request_id, fds)
        except TimeoutError:
            self._drop(connection)
            raise LLMQueryError(f"{kind}: no answer from the host in {self._timeout:g} s") from None
        except (OSError, ValueError) as exc:
            self._drop(connection)
            raise LLMQueryError(f"{kind}: the callback channel failed: {exc}") from None
        if reply.get("status") != "ok":
            raise LLMQueryError(reply.get("error", "unknown error"))
        return reply

    def _exchange(
        self, connection: _Connection, frame: bytes, request_id: str, fds: list[int] | None
    ) -> dict[str, Any]:
        """One request and its reply (descriptors that come with it go to `fds`, else they
        are dropped). Each send and receive waits up to the timeout (a reply arrives in one
        piece unless it is large), and the whole exchange at most about twice that."""
        sock, reader = connection.sock, connection.reader
        deadline = time.monotonic() + self._timeout
        try:
            sock.sendall(frame)
            while True:
                body = reader.next()
                if body is not None:
                    reply = connection.signer.unpack(body)
                    if reply.get("re") == request_id:
                        return reply
                    continue  # not an answer to this request: nothing waits for it
                if time.monotonic() > deadline:
                    raise TimeoutError
                data = _receive(sock, fds)
                if not data:
                    raise ConnectionError("the host closed the connection")
                reader.feed(data)
        except BlockingIOError:  # SO_RCVTIMEO / SO_SNDTIMEO ran out
            raise TimeoutError from None


def _receive(sock: socket.socket, fds: list[int] | None) -> bytes:
    """The next bytes on `sock`: polled for up to SPIN_S, then waited for."""
    until = time.perf_counter() + SPIN_S
    while time.perf_counter() < until:
        try:
            return _recv(sock, socket.MSG_DONTWAIT, fds)
        except BlockingIOError:  # nothing yet
            continue
    return _recv(sock, 0, fds)


def _recv(sock: socket.socket, flags: int, fds: list[int] | None) -> bytes:
    if fds is None:
        return sock.recv(1 << 16, flags)
    # Not socket.recv_fds: it drops `flags` (CPython issue 107898), and so MSG_DONTWAIT.
    data, ancillary, _, _ = sock.recvmsg(
        1 << 16, socket.CMSG_SPACE(FD_BYTES), flags | socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % FD_BYTES]))
    return data
