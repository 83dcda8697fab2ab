"""A byte relay between the host's Jupyter sockets and one kernel's, bounding each message.

libzmq bounds one frame (ZMQ_MAXMSGSIZE) but neither the number of frames in a message nor
its total size, and it hands a message over only whole: one message of two million empty
frames, or of forty 60 MiB frames, is held in full by the host before anything can look at
it. The relay sits between each host socket and the kernel's ipc socket and follows the
ZMTP 3 frame headers of what the kernel sends (only the headers: bodies pass untouched);
when a message exceeds its frame or byte bound it drops both connections, and libzmq
discards the partial message. Older ZMTP framings are refused, not parsed. libzmq on both
ends still does the handshake end to end through it.

The relay holds no messages: backpressure stops it reading one end while the other end's
write buffer is full, so each connection holds at most a read and a write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

log = logging.getLogger(__name__)

GREETING = 64  # bytes: signature, version, mechanism, as-server, filler
MORE, LONG, COMMAND = 1, 2, 4  # ZMTP 3 frame flags
CONNECT_TIMEOUT = 60.0  # seconds a connection waits for the kernel's socket to appear
CONNECT_RETRY = 0.005  # as the host's ZMQ_RECONNECT_IVL: a start waits no longer than that
CLOSE_WAIT = 1.0  # seconds suspend waits for the kernel's connections to close
READ_BUFFER = 256 * 1024  # bytes a read takes at most, as asyncio's own reads


class FrameBound:
    """Follows the ZMTP 3 frames of one byte stream; False once a message breaks the bound."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._greeting = b""
        self._header = b""  # a frame header split across reads
        self._body_left = 0
        self._frames = self._bytes = 0  # of the message under way

    def feed(self, data: bytes) -> bool:
        i = 0
        if len(self._greeting) < GREETING:
            i = GREETING - len(self._greeting)
            self._greeting += data[:i]
            g = self._greeting
            # Signature 0xFF ... 0x7F, then a major version of at least 3: an older framing
            # (which libzmq would accept) is refused rather than parsed.
            if g[0] != 0xFF or (len(g) > 9 and g[9] != 0x7F) or (len(g) > 10 and g[10] < 3):
                return False
        end = len(data)
        if self._header:  # finish the header split across reads, from its own bytes
            held = len(self._header)
            header = self._header + data[i : i + 9 - held]
            need = 9 if header[0] & LONG else 2
            if len(header) < need:
                self._header = header
                return True
            self._header = b""
            if not self._frame(header, 0):
                return False
            i += need - held
        # Every message passes through here: the headers are read in place, no slices.
        while i < end:
            left = self._body_left
            if left:
                if left >= end - i:
                    self._body_left = left - (end - i)
                    return True
                i += left
                self._body_left = 0
            need = 9 if data[i] & LONG else 2
            if end - i < need:
                self._header = data[i:]
                return True
            if not self._frame(data, i):
                return False
            i += need
        return True

    def _frame(self, data: bytes, at: int) -> bool:
        """Take the frame header at `at`; False if it breaks the framing or the bound."""
        flags = data[at]
        if flags & ~(MORE | LONG | COMMAND) or (flags & COMMAND and flags & MORE):
            return False
        size = _LONG_SIZE.unpack_from(data, at + 1)[0] if flags & LONG else data[at + 1]
        self._frames += 1
        self._bytes += size
        if self._frames > self.max_frames or self._bytes > self.max_bytes:
            return False
        if not flags & MORE:
            self._frames = self._bytes = 0
        self._body_left = size
        return True


_LONG_SIZE = struct.Struct(">Q")


class _Side(asyncio.BufferedProtocol):
    """One end of a relayed connection; what the kernel's end sends goes through `bound`.

    Read into its relay's buffer: a plain Protocol gets a new bytes object per read,
    which asyncio allocates at 256 KiB and shrinks, 30-40 us a read here against 4 us for
    a read into a buffer that stays (three or four reads a warm execute).
    """

    def __init__(self, link: _Link, bound: FrameBound | None) -> None:
        self.link, self.bound = link, bound
        self.transport: asyncio.Transport | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.link.relay.buffer

    def buffer_updated(self, nbytes: int) -> None:
        # A copy: the buffer is the next read's, and a transport may keep what it is given
        # to write.
        self.data_received(bytes(self.link.relay.buffer[:nbytes]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self is self.link.host:  # nothing to pass on until the kernel's end connects
            self.transport.pause_reading()
            self.link.connect()
        else:
            self.link.relay.kernel_sides.add(self)

    def data_received(self, data: bytes) -> None:
        if self.link.closed:
            return
        link = self.link
        if self is link.host and (link.kernel is None or link.kernel.transport is None):
            # Some Pythons (Debian 12's 3.11.2) ignore a pause_reading() made in
            # connection_made: the host's greeting can arrive before the kernel's end is
            # connected. The host's end is ours: hold it and pass it on once connected.
            link.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        if self.bound is not None and not self.bound.feed(data):
            self.link.relay.broke()
            self.link.close()
            return
        self.link.peer(self).write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.relay.kernel_sides.discard(self)
        self.link.close()

    # Backpressure: while one end does not read, the relay stops reading the other.
    def pause_writing(self) -> None:
        self.link.peer(self).pause_reading()

    def resume_writing(self) -> None:
        self.link.peer(self).resume_reading()


class _Link:
    """One host connection and the kernel connection made for it."""

    def __init__(self, relay: ChannelRelay) -> None:
        self.relay = relay
        self.host = _Side(self, None)
        self.kernel: _Side | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False
        self.early: list[bytes] = []  # what the host sent before the kernel's end connected

    def peer(self, side: _Side) -> asyncio.Transport:
        other = self.kernel if side is self.host else self.host
        assert other is not None and other.transport is not None
        return other.transport

    def connect(self) -> None:
        self.connecting = task = asyncio.get_running_loop().create_task(self._connect())
        self.relay.tasks.add(task)
        task.add_done_callback(self.relay.tasks.discard)

    async def _connect(self) -> None:
        """Connect to the kernel's socket, which appears only once the kernel is up."""
        loop = asyncio.get_running_loop()
        bound = FrameBound(self.relay.max_frames, self.relay.max_bytes)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        try:  # a suspended relay connects nothing until the next kernel is up
            await asyncio.wait_for(self.relay.serving.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            self.close()
            return
        target = self.relay.target
        while not self.closed:
            try:
                # Until the kernel binds, its socket file is missing: a stat says so for a
                # tenth of a failed connect's CPU (each channel tries ~50 times a boot,
                # while the boot wants both cores).
                if not os.path.exists(target):
                    raise FileNotFoundError(target)
                await loop.create_unix_connection(lambda: self._kernel_side(bound), target)
            except OSError:
                if time.monotonic() > deadline:
                    log.debug("the kernel's socket %s did not appear", target)
                    self.close()
                    return
                await asyncio.sleep(CONNECT_RETRY)
            else:
                if not self.closed:
                    assert self.host.transport is not None and self.kernel is not None
                    if self.early and self.kernel.transport is not None:
                        self.kernel.transport.write(b"".join(self.early))
                        self.early.clear()
                    self.host.transport.resume_reading()
                return

    def _kernel_side(self, bound: FrameBound) -> _Side:
        self.kernel = _Side(self, bound)
        return self.kernel

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.relay.links.discard(self)
        if self.connecting is not None and self.connecting is not asyncio.current_task():
            self.connecting.cancel()
        for side in (self.host, self.kernel):
            if side is not None and side.transport is not None:
                side.transport.abort()


class ChannelRelay:
    """Accepts the host's connections at `listen`, each relayed to the kernel's `target`;
    `on_broken` is called when one is dropped for a message over the bound."""

    def __init__(
        self,
        listen: Path,
        target: str,
        max_frames: int,
        max_bytes: int,
        on_broken: Callable[[], None],
        buffer: memoryview,
    ) -> None:
        self.listen, self.target = listen, target
        self.buffer = buffer  # where its connections' reads land
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self.on_broken = on_broken
        self.links: set[_Link] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # connecting to the kernel
        self.kernel_sides: set[_Side] = set()  # connections to the kernel not yet closed
        self.serving = asyncio.Event()
        self.serving.set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_unix_server(
            self._accept, str(self.listen)
        )

    def _accept(self) -> _Side:
        link = _Link(self)
        self.links.add(link)
        return link.host

    def broke(self) -> None:
        self.on_broken()
        log.warning(
            "dropped the connection to the kernel's %s: a message over %d frames or %d bytes",
            self.target,
            self.max_frames,
            self.max_bytes,
        )

    async def suspend(self) -> None:
        """Drop every connection, and connect new ones only once `serving` is set again."""
        self.serving.clear()
        for link in list(self.links):
            link.close()
        # A transport closes its socket on the loop's next turn: wait for that.
        deadline = time.monotonic() + CLOSE_WAIT
        while self.kernel_sides and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.listen.unlink()


class KernelRelay:
    """The relays of one kernel's channels: the host connects to `<prefix>-<port>` instead
    of the kernel's `<kernel prefix>-<port>` (jupyter_client's ipc endpoints)."""

    def __init__(self, prefix: Path, max_frames: int, max_bytes: int) -> None:
        self.prefix = prefix
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._relays: dict[str, ChannelRelay] = {}
        self.broken = 0  # connections dropped so far for a message over the bound
        # Every read of these relays' connections lands here and is copied out before the
        # next (reads run one at a time on the event loop). Anonymous memory: pages never
        # written take no room, so a sandbox holds only as much as its largest read.
        self._buffer = memoryview(mmap.mmap(-1, READ_BUFFER))

    def _broke(self) -> None:
        self.broken += 1

    async def serve(self, kernel_prefix: str, ports: list[int]) -> None:
        """Listen for each of `ports`; relays already listening for the same target stay."""
        wanted = {
            f"{kernel_prefix}-{port}": self.prefix.with_name(f"{self.prefix.name}-{port}")
            for port in ports
        }
        for target in [t for t in self._relays if t not in wanted]:
            await self._relays.pop(target).close()
        for target, listen in wanted.items():
            if target not in self._relays:
                relay = ChannelRelay(
                    listen, target, self.max_frames, self.max_bytes, self._broke, self._buffer
                )
                await relay.start()
                self._relays[target] = relay
            self._relays[target].serving.set()

    async def suspend(self) -> None:
        """Drop every connection to the kernel until `serve` is called again: while a kernel
        is killed and replaced, the host's sockets reconnect, and must reach the next kernel,
        not the dying one."""
        for relay in self._relays.values():
            await relay.suspend()

    async def close(self) -> None:
        relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            await relay.close()
