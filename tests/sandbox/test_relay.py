"""The relay's frame-header parser, and the relay between two real ZMQ sockets."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from rlm.sandbox.relay import COMMAND, GREETING, LONG, MORE, FrameBound, KernelRelay

ZMTP3 = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\0") + bytes(32)
assert len(ZMTP3) == GREETING


def frame(body: bytes, more: bool = False, long: bool = False, command: bool = False) -> bytes:
    flags = (MORE if more else 0) | (COMMAND if command else 0)
    if long or len(body) > 255:
        return bytes([flags | LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def message(*bodies: bytes) -> bytes:
    return b"".join(frame(body, more=i < len(bodies) - 1) for i, body in enumerate(bodies))


def feed_in_chunks(bound: FrameBound, data: bytes, size: int) -> bool:
    return all(bound.feed(data[i : i + size]) for i in range(0, len(data), size))


# A READY command, a message at the frame bound, one at the byte bound (a long header too).
WITHIN = (
    ZMTP3
    + frame(b"\x05READY" + bytes(20), command=True)
    + message(*[b""] * 8)
    + message(b"a" * 300, b"b" * 400, b"c" * 300)
    + message(b"d" * 1000)
)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 9, 10, 64, 65, 300, len(WITHIN)])
def test_messages_within_the_bound_pass_in_any_chunking(chunk: int) -> None:
    assert feed_in_chunks(FrameBound(8, 1000), WITHIN, chunk)


@pytest.mark.parametrize("chunk", [1, 5, 64, 10_000])
def test_one_frame_over_the_frame_bound_is_refused(chunk: int) -> None:
    assert not feed_in_chunks(FrameBound(8, 1000), ZMTP3 + message(*[b""] * 9), chunk)


@pytest.mark.parametrize("chunk", [1, 5, 64, 10_000])
def test_one_byte_over_the_byte_bound_is_refused(chunk: int) -> None:
    over = ZMTP3 + message(b"a" * 300, b"b" * 400, b"c" * 301)
    assert not feed_in_chunks(FrameBound(8, 1000), over, chunk)


def test_the_bound_is_per_message() -> None:
    bound = FrameBound(2, 10)
    assert bound.feed(ZMTP3)
    for _ in range(100):
        assert bound.feed(message(b"12345", b"67890"))
    assert not bound.feed(message(b"1", b"2", b"3"))


def test_a_long_header_is_refused_at_its_size_before_the_body() -> None:
    # 2**62 bytes announced: refused from the header alone, nothing of the body needed.
    header = bytes([LONG]) + struct.pack(">Q", 2**62)
    assert not FrameBound(8, 1000).feed(ZMTP3 + header)


@pytest.mark.parametrize(
    "greeting",
    [
        b"\x00" + ZMTP3[1:],  # not the signature
        ZMTP3[:9] + b"\x00" + ZMTP3[10:],  # not the signature's end
        ZMTP3[:10] + b"\x02" + ZMTP3[11:],  # ZMTP 2: a framing the parser does not follow
    ],
)
def test_other_greetings_are_refused(greeting: bytes) -> None:
    assert not feed_in_chunks(FrameBound(8, 1000), greeting, 1)


@pytest.mark.parametrize("flags", [0x08, 0x80, COMMAND | MORE])
def test_unknown_or_contradictory_flags_are_refused(flags: int) -> None:
    assert not FrameBound(8, 1000).feed(ZMTP3 + bytes([flags, 0]))


@contextlib.asynccontextmanager
async def relayed(
    tmp_path: Path,
) -> AsyncIterator[tuple[zmq.asyncio.Socket, KernelRelay, zmq.asyncio.Socket]]:
    """A kernel's ROUTER, a relay bounding it to 16 frames and 1,000 bytes, a host's DEALER."""
    context = zmq.asyncio.Context()
    kernel = context.socket(zmq.ROUTER)
    kernel.bind(f"ipc://{tmp_path}/kernel-1")
    relay = KernelRelay(tmp_path / "relay", 16, 1000)
    await relay.serve(f"{tmp_path}/kernel", [1])
    host = context.socket(zmq.DEALER)
    host.setsockopt(zmq.RECONNECT_IVL, 5)
    host.connect(f"ipc://{tmp_path}/relay-1")
    try:
        yield kernel, relay, host
    finally:
        await relay.close()
        host.close(linger=0)
        kernel.close(linger=0)
        context.term()


async def test_relay_passes_messages_and_drops_a_connection_over_the_bound(
    tmp_path: Path,
) -> None:
    async with relayed(tmp_path) as (kernel, relay, host):
        await host.send_multipart([b"", b"hello"])
        identity, *request = await asyncio.wait_for(kernel.recv_multipart(), 10)
        assert request == [b"", b"hello"]
        await kernel.send_multipart([identity, b"", b"x" * 1000])
        assert await asyncio.wait_for(host.recv_multipart(), 10) == [b"", b"x" * 1000]
        assert relay.broken == 0

        await kernel.send_multipart([identity, *[b""] * 17])
        await kernel.send_multipart([identity, b"", b"after"])
        for _ in range(1000):
            if relay.broken:
                break
            await asyncio.sleep(0.01)
        assert relay.broken == 1
        # The host's socket reconnects; the messages of the dropped connection are gone.
        assert not await host.poll(200)
    assert not (tmp_path / "relay-1").exists()


def connecting_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if "_Link._connect" in repr(task.get_coro())]


async def test_a_suspended_relay_reaches_the_kernel_only_once_served_again(
    tmp_path: Path,
) -> None:
    """What a restart does: no connection reaches the old kernel, reconnects wait for the next."""
    async with relayed(tmp_path) as (kernel, relay, host):
        await host.send_multipart([b"", b"first"])
        assert (await asyncio.wait_for(kernel.recv_multipart(), 10))[1:] == [b"", b"first"]
        await relay.suspend()
        await host.send_multipart([b"", b"held"])
        assert not await kernel.poll(300)
        await relay.serve(f"{tmp_path}/kernel", [1])
        assert (await asyncio.wait_for(kernel.recv_multipart(), 10))[1:] == [b"", b"held"]
    assert connecting_tasks() == []
