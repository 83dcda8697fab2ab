"""What libzmq lets a peer make the host buffer, and what a bounding relay would cost.

    python scripts/zmq_bounds_experiment.py [buffering|relay|all|sandbox]

The figures behind README's "Known limits" text on many-frame messages (issue 12, item 6).

buffering: a sender process (the kernel's part) sends over ipc to a SUB socket in this process
  (the host's part, with the host's 64 MiB ZMQ_MAXMSGSIZE), which reads nothing; printed is how
  much this process grew once libzmq had the message. ZMQ_MAXMSGSIZE bounds each frame, a
  multipart message is handed over only whole, and the high-water mark counts whole messages,
  so neither the number of frames nor a message's total size is bounded.

relay: a prototype of the bound the host would need, a byte relay between host and kernel that
  parses only ZMTP 3 frame headers and drops the connection when a message exceeds N frames or
  M bytes (libzmq on both ends still does the handshake end to end through it). Printed are the
  host's growth under the same 2 M-frame message through it, and the round trip it adds
  (DEALER to an echoing ROUTER over ipc, direct and relayed, in turns).

sandbox (not in "all"): warm executes of two container sandboxes in turns, one of them with
  its channels relayed.

buffering needs about 3 GiB of free memory.
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, cast

import zmq
import zmq.asyncio

MAX_FRAME = 64 * 1024**2  # the host's ZMQ_MAXMSGSIZE on the Jupyter channels
MiB = 1024**2

SENDER = r"""
import sys, time, zmq
address, kind, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socket = zmq.Context().socket(zmq.PUB)
socket.setsockopt(zmq.SNDHWM, 0)
socket.bind(address)
time.sleep(1)  # let the subscription arrive
frame = b"x" * size
if kind == "frames":  # one message of `count` frames
    socket.send_multipart([frame] * count, copy=False)
else:  # `count` messages of one frame
    for _ in range(count):
        socket.send(frame, copy=False)
time.sleep(600)
"""


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_growth(base: int) -> int:
    """How much this process grew once its memory stopped changing."""
    previous = -1
    while (now := rss()) != previous:
        previous = now
        time.sleep(0.5)
    return now - base


def start_sender(address: str, kind: str, count: int, size: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", SENDER, address, kind, str(count), str(size)]
    return subprocess.Popen(args)


def buffering_trial(kind: str, count: int, size: int, hwm: int = 1000) -> None:
    address = f"ipc://{tempfile.mkdtemp()}/kernel"
    sender = start_sender(address, kind, count, size)
    context = zmq.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.RCVHWM, hwm)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(address)
    base = rss()
    try:
        arrived = bool(socket.poll(120_000))  # a message is whole: nothing read yet
        grown = settled_growth(base)
        what = f"1 message of {count:,} frames" if kind == "frames" else f"{count} messages"
        print(
            f"{what} of {size / MiB:g} MiB each (RCVHWM {hwm}): arrived={arrived}, "
            f"host grew {grown / MiB:.1f} MiB before reading anything"
        )
    finally:
        sender.kill()
        sender.wait()
        socket.close(linger=0)
        context.term()


# --- the relay prototype ---------------------------------------------------------------

GREETING = 64
MORE, LONG, COMMAND = 1, 2, 4


class FrameBound:
    """Follows ZMTP 3 frame headers in a byte stream; False once a message breaks the bound."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._greeting = b""
        self._header = b""
        self._body_left = 0
        self._frames = self._bytes = 0

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
        while i < len(data):
            if self._body_left:
                step = min(self._body_left, len(data) - i)
                self._body_left -= step
                i += step
                continue
            header = self._header + data[i : i + 9 - len(self._header)]
            flags = header[0]
            need = 9 if flags & LONG else 2
            if len(header) < need:
                self._header, i = header, len(data)
                break
            i += need - len(self._header)
            self._header = b""
            if flags & ~(MORE | LONG | COMMAND) or (flags & COMMAND and flags & MORE):
                return False
            size = struct.unpack(">Q", header[1:9])[0] if flags & LONG else header[1]
            self._frames += 1
            self._bytes += size
            if self._frames > self.max_frames or self._bytes > self.max_bytes:
                return False
            if not flags & MORE:
                self._frames = self._bytes = 0
            self._body_left = size
        return True


class Side(asyncio.Protocol):
    """One end of a relayed connection; bytes from the kernel's end go through `bound`."""

    def __init__(self, link: Link, bound: FrameBound | None) -> None:
        self.link, self.bound = link, bound
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.link.closed:
            return
        if self.bound is not None and not self.bound.feed(data):
            self.link.relay.broken += 1
            self.link.close()
            return
        self.link.peer(self).write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()

    # Backpressure: a peer that does not read stops the relay reading the other end.
    def pause_writing(self) -> None:
        self.link.peer(self).pause_reading()

    def resume_writing(self) -> None:
        self.link.peer(self).resume_reading()


class Link:
    """One host connection and the kernel connection made for it."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.host: Side | None = None
        self.kernel: Side | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False

    def peer(self, side: Side) -> asyncio.Transport:
        other = self.kernel if side is self.host else self.host
        assert other is not None and other.transport is not None
        return other.transport

    def close(self) -> None:
        self.closed = True
        for side in (self.host, self.kernel):
            if side is not None and side.transport is not None:
                side.transport.abort()


class Relay:
    """Accepts the host's connections on `listen`, each relayed to the kernel's `target`.

    The kernel binds its sockets after the host connects (as jupyter_client does it), so a
    connection waits for the kernel's socket to appear rather than failing at once.
    """

    CONNECT_WAIT = 30.0

    def __init__(self, target: str, max_frames: int, max_bytes: int) -> None:
        self.target, self.max_frames, self.max_bytes = target, max_frames, max_bytes
        self.broken = 0  # connections dropped for breaking the bound
        self.server: asyncio.Server | None = None

    async def start(self, listen: str) -> Relay:
        self.server = await asyncio.get_running_loop().create_unix_server(self._accept, listen)
        return self

    def _accept(self) -> Side:
        link = Link(self)
        link.host = Side(link, None)
        link.connecting = asyncio.get_running_loop().create_task(self._connect(link))
        return link.host

    async def _connect(self, link: Link) -> None:
        host = link.host
        assert host is not None
        while host.transport is None:  # connection_made comes right after _accept
            await asyncio.sleep(0)
        host.transport.pause_reading()  # until the kernel's end is connected
        bound = FrameBound(self.max_frames, self.max_bytes)
        deadline = time.monotonic() + self.CONNECT_WAIT
        while not link.closed:
            try:
                _, link.kernel = await asyncio.get_running_loop().create_unix_connection(
                    lambda: Side(link, bound), self.target
                )
            except OSError:
                if time.monotonic() > deadline:
                    link.close()
                    return
                await asyncio.sleep(0.005)
            else:
                host.transport.resume_reading()
                return

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def relay_bound_trial() -> None:
    directory = tempfile.mkdtemp()
    sender = start_sender(f"ipc://{directory}/kernel", "frames", 2_000_000, 0)
    relay = await Relay(f"{directory}/kernel", 1024, MAX_FRAME).start(f"{directory}/relay")
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(f"ipc://{directory}/relay")
    base = rss()
    try:
        deadline = time.monotonic() + 120
        while not relay.broken and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print(
            "1 message of 2,000,000 frames through the relay (1,024 frames at most): "
            f"dropped={bool(relay.broken)}, host grew {(rss() - base) / MiB:.1f} MiB"
        )
    finally:
        sender.kill()
        sender.wait()
        socket.close(linger=0)
        context.term()
        relay.close()


def echo(address: str, ready: threading.Event) -> None:
    socket = zmq.Context().socket(zmq.ROUTER)
    socket.bind(address)
    ready.set()
    while True:
        socket.send_multipart(socket.recv_multipart())


async def relay_latency_trial(rounds: int = 20, per_round: int = 200) -> None:
    directory = tempfile.mkdtemp()
    ready = threading.Event()
    threading.Thread(target=echo, args=(f"ipc://{directory}/kernel", ready), daemon=True).start()
    ready.wait()
    relay = await Relay(f"{directory}/kernel", 1024, MAX_FRAME).start(f"{directory}/relay")
    context = zmq.asyncio.Context()
    sockets = {}
    for name, path in (("direct", "kernel"), ("relayed", "relay")):
        sockets[name] = socket = context.socket(zmq.DEALER)
        socket.connect(f"ipc://{directory}/{path}")
    message = [b"", b"x" * 500]
    samples: dict[str, list[float]] = {name: [] for name in sockets}
    for round_ in range(rounds + 1):
        for name, socket in sockets.items():
            for _ in range(per_round):
                started = time.perf_counter()
                await socket.send_multipart(message)
                await socket.recv_multipart()
                if round_:  # the first round warms up
                    samples[name].append(time.perf_counter() - started)
    ms = {name: statistics.median(times) * 1000 for name, times in samples.items()}
    print(
        f"round trip over ipc: direct {ms['direct']:.3f} ms, relayed {ms['relayed']:.3f} ms "
        f"(+{ms['relayed'] - ms['direct']:.3f} ms for two relayed hops)"
    )
    for socket in sockets.values():
        socket.close(linger=0)
    context.term()
    relay.close()


async def sandbox_trial(runs: int = 3, per_round: int = 100) -> None:
    """Warm executes of two container sandboxes in turns, one with its client's channels
    relayed (the manager's own control socket stays direct: an execute does not use it)."""
    from rlm.bench import _interleaved_ms
    from rlm.sandbox import Sandbox
    from rlm.sandbox.channels import KernelChannels

    direct_open = KernelChannels.open

    async def relayed_open(self: KernelChannels, manager: Any) -> Any:
        prefix = f"{tempfile.mkdtemp()}/kernel"
        ports = (
            manager.shell_port,
            manager.iopub_port,
            manager.stdin_port,
            manager.hb_port,
            manager.control_port,
        )
        for port in ports:
            relay = Relay(f"{manager.ip}-{port}", 1024, MAX_FRAME)
            relays.append(await relay.start(f"{prefix}-{port}"))
        make_client = manager.client

        def client(**kwargs: Any) -> Any:
            made = make_client(**kwargs)
            made.ip = prefix  # ipc endpoints are "<ip>-<port>"
            return made

        manager.client = client
        try:
            return await direct_open(self, manager)
        finally:
            manager.client = make_client

    relays: list[Relay] = []
    async with Sandbox(None) as direct:
        KernelChannels.open = relayed_open  # type: ignore[method-assign]
        try:
            relayed = await Sandbox(None).start()
        finally:
            KernelChannels.open = direct_open  # type: ignore[method-assign]
        async with relayed:
            check = await relayed.execute("print('relayed')")
            assert check.stdout == "relayed\n", check
            actions = {
                "direct": lambda: direct.execute("x = 1"),
                "relayed": lambda: relayed.execute("x = 1"),
            }
            for _ in range(runs):
                ms = await _interleaved_ms(actions, 10, per_round, 20)
                print(
                    f"warm execute: direct {ms['direct']:.3f} ms, relayed {ms['relayed']:.3f} ms "
                    f"({ms['relayed'] - ms['direct']:+.3f} ms)"
                )
    for relay in relays:
        relay.close()


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "trial":  # one buffering trial, in a process of its own
        kind, count, size, hwm = sys.argv[2], *map(int, sys.argv[3:6])
        buffering_trial(kind, count, size, hwm)
    if what in ("buffering", "all"):
        # Each in a fresh process: memory a trial frees stays in this one's heap and
        # would hide the next trial's growth.
        for args in (
            ("frames", 2_000_000, 0, 1000),
            ("frames", 4, 60 * MiB, 1000),
            ("frames", 40, 60 * MiB, 1000),
            ("messages", 8, 60 * MiB, 1000),
            ("messages", 8, 60 * MiB, 2),
        ):
            subprocess.run([sys.executable, __file__, "trial", *map(str, args)], check=True)
    if what in ("relay", "all"):
        asyncio.run(relay_bound_trial())
        asyncio.run(relay_latency_trial())
    if what == "sandbox":  # needs the kernel image and a container engine
        asyncio.run(sandbox_trial())


if __name__ == "__main__":
    main()
