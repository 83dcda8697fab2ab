"""What libzmq lets a peer make the host buffer, and what a bounding relay would cost.

    python scripts/zmq_bounds_experiment.py [buffering|relay|all|sandbox]

The figures behind README's "Known limits" text on many-frame messages (issue 12, item 6).

buffering: a sender process (the kernel's part) sends over ipc to a SUB socket in this process
  (the host's part, with the host's 64 MiB ZMQ_MAXMSGSIZE), which reads nothing; printed is how
  much this process grew once libzmq had the message. ZMQ_MAXMSGSIZE bounds each frame, a
  multipart message is handed over only whole, and the high-water mark counts whole messages,
  so neither the number of frames nor a message's total size is bounded.

relay: the bound rlm ships (rlm.sandbox.relay), a byte relay between host and kernel that
  parses only ZMTP 3 frame headers and drops the connection when a message exceeds
  MAX_MESSAGE_FRAMES frames or MAX_MESSAGE_TOTAL bytes (libzmq on both ends still does the
  handshake end to end through it). Printed are the host's growth under the same 2 M-frame
  message through it, and the round trip it adds (DEALER to an echoing ROUTER over ipc,
  direct and relayed, in turns).

sandbox (not in "all"): warm executes of two container sandboxes in turns, one as shipped
  (relayed), one with its channels connected directly: what the relay costs an execute.

buffering needs about 3 GiB of free memory.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq
import zmq.asyncio

from rlm.sandbox.channels import MAX_MESSAGE_FRAMES, MAX_MESSAGE_TOTAL, RelayedKernelManager
from rlm.sandbox.relay import KernelRelay

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


# --- the shipped relay (rlm.sandbox.relay) ------------------------------------------


async def relay_bound_trial() -> None:
    directory = tempfile.mkdtemp()
    sender = start_sender(f"ipc://{directory}/kernel-1", "frames", 2_000_000, 0)
    relay = KernelRelay(Path(directory, "relay"), MAX_MESSAGE_FRAMES, MAX_MESSAGE_TOTAL)
    await relay.serve(f"{directory}/kernel", [1])
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(f"ipc://{directory}/relay-1")
    base = rss()
    try:
        deadline = time.monotonic() + 120
        while not relay.broken and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print(
            f"1 message of 2,000,000 frames through the relay ({MAX_MESSAGE_FRAMES:,} at most): "
            f"dropped={bool(relay.broken)}, host grew {(rss() - base) / MiB:.1f} MiB"
        )
    finally:
        sender.kill()
        sender.wait()
        socket.close(linger=0)
        context.term()
        await relay.close()


def echo(address: str, ready: threading.Event) -> None:
    socket = zmq.Context().socket(zmq.ROUTER)
    socket.bind(address)
    ready.set()
    while True:
        socket.send_multipart(socket.recv_multipart())


async def relay_latency_trial(rounds: int = 20, per_round: int = 200) -> None:
    directory = tempfile.mkdtemp()
    ready = threading.Event()
    threading.Thread(target=echo, args=(f"ipc://{directory}/kernel-1", ready), daemon=True).start()
    ready.wait()
    relay = KernelRelay(Path(directory, "relay"), MAX_MESSAGE_FRAMES, MAX_MESSAGE_TOTAL)
    await relay.serve(f"{directory}/kernel", [1])
    context = zmq.asyncio.Context()
    sockets = {}
    for name, path in (("direct", "kernel-1"), ("relayed", "relay-1")):
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
    await relay.close()


async def sandbox_trial(runs: int = 3, per_round: int = 100) -> None:
    """Warm executes of two container sandboxes in turns: one as shipped, every channel
    relayed, and one whose sockets connect to the kernel's directly."""
    from jupyter_client import AsyncKernelManager

    from rlm.bench import _interleaved_ms
    from rlm.sandbox import Sandbox

    relayed_methods = RelayedKernelManager._make_url, RelayedKernelManager.client
    async with Sandbox(None) as relayed:
        # The direct sandbox's manager and client take jupyter_client's own endpoints;
        # only its start needs them (an execute does not reconnect).
        RelayedKernelManager._make_url = AsyncKernelManager._make_url  # type: ignore[method-assign]
        RelayedKernelManager.client = AsyncKernelManager.client  # type: ignore[method-assign]
        try:
            direct = await Sandbox(None).start()
        finally:
            RelayedKernelManager._make_url, RelayedKernelManager.client = relayed_methods  # type: ignore[method-assign]
        async with direct:
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
