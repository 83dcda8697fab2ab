"""llm_query over the signed callback channel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from rlm.kernel_image.rlm_kernel.protocol import PROTOCOL, Signer
from rlm.sandbox import LLMRequest
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.sandbox import Sandbox
from tests.conftest import RecordingHandler

pytestmark = pytest.mark.rootless


async def test_llm_query_round_trip(sandbox: Sandbox, handler: RecordingHandler) -> None:
    result = await sandbox.execute("print(llm_query('what is 6*7?', model='small'))")
    assert result.stdout.strip() == "answer to what is 6*7?"
    request = handler.calls[0][0]
    assert (request.prompt, request.model) == ("what is 6*7?", "small")


async def test_handler_error_becomes_an_exception(sandbox: Sandbox) -> None:
    result = await sandbox.execute("llm_query('fail now')")
    assert result.error is not None
    assert result.error.name == "LLMQueryError"
    assert "model refused 'fail now'" in result.error.value


async def test_batched_keeps_order_and_overlaps(runtime: str) -> None:
    handler = RecordingHandler(delay=0.2)
    async with Sandbox("x", llm_handler=handler, runtime=runtime) as box:
        result = await box.execute(
            "answers = llm_query_batched([f'q{i}' for i in range(8)] + ['fail 8'])\n"
            "print(json.dumps(answers))"
        )
    answers = json.loads(result.stdout)
    assert answers[:8] == [f"answer to q{i}" for i in range(8)]
    assert answers[8].startswith("[llm_query failed:") and "model refused" in answers[8]
    # Overlap, from the handler's own timestamps: every call started before the first ended.
    first_end = min(end for _, _, end in handler.calls)
    assert all(start < first_end for _, start, _ in handler.calls)
    assert sorted(r.batch_index for r, _, _ in handler.calls) == list(range(8))


async def test_threads_get_concurrent_service(runtime: str) -> None:
    handler = RecordingHandler(delay=0.2)
    async with Sandbox("x", llm_handler=handler, runtime=runtime) as box:
        result = await box.execute(
            "from concurrent.futures import ThreadPoolExecutor\n"
            "with ThreadPoolExecutor(6) as pool:\n"
            "    out = list(pool.map(llm_query, [f't{i}' for i in range(6)]))\n"
            "print(json.dumps(out))"
        )
    assert json.loads(result.stdout) == [f"answer to t{i}" for i in range(6)]
    first_end = min(end for _, _, end in handler.calls)
    assert all(start < first_end for _, start, _ in handler.calls)


async def test_forged_and_replayed_messages_are_rejected(
    sandbox: Sandbox, handler: RecordingHandler
) -> None:
    assert sandbox.run_dir is not None
    endpoint = f"ipc://{sandbox.run_dir / 'k' / 'callback'}"
    # Async: the host's callback server runs in this test's event loop.
    socket = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    request = {"id": "1", "type": "llm_query", "prompt": "forged", "model": None}
    try:
        await socket.send_multipart(Signer(b"not-the-key").pack(request))
        await socket.send_multipart([PROTOCOL, b"", json.dumps(request).encode()])  # unsigned
        await socket.send_multipart([b"garbage"])
        # A correctly signed message, sent twice: the copy is a replay.
        key = json.loads((sandbox.run_dir / "callback.json").read_text())["key"]
        genuine = Signer(key.encode()).pack({**request, "prompt": "genuine"})
        await socket.send_multipart(genuine)
        assert await socket.poll(5000)
        reply = Signer(key.encode()).unpack(await socket.recv_multipart())
        assert reply == {"status": "ok", "result": "answer to genuine", "re": "1"}
        await socket.send_multipart(genuine)
        assert not await socket.poll(500)
    finally:
        socket.close()
    assert [r.prompt for r, _, _ in handler.calls] == ["genuine"]
    assert sandbox.callbacks_rejected == 4


async def test_a_handler_that_never_answers_times_out() -> None:
    handler = RecordingHandler(delay=30)
    limits = SandboxLimits(callback_timeout=0.5)
    async with Sandbox("x", llm_handler=handler, runtime="local", limits=limits) as box:
        result = await box.execute("llm_query('slow')", timeout=20)
        assert result.error is not None
        assert result.error.name == "LLMQueryError"
        assert "0.5 s" in result.error.value
        assert not result.timed_out  # the callback gave up, not the 20 s execute timeout
        # The channel still works afterwards.
        handler.delay = 0
        assert (await box.execute("print(llm_query('fast'))")).stdout == "answer to fast\n"


def peak_rss_kib() -> int:
    """This process's peak resident set size (Linux's VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def reset_peak_rss_kib() -> int:
    """Lower the peak to the current resident size (Linux >= 4.0) and return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_kib()


async def test_oversized_requests_are_refused_without_buffering(runtime: str) -> None:
    handler = RecordingHandler()
    limits = SandboxLimits(callback_max_bytes=1024**2)
    async with Sandbox("x", llm_handler=handler, runtime=runtime, limits=limits) as box:
        too_big = await box.execute("llm_query('x' * 2_000_000)")
        assert too_big.error is not None and too_big.error.name == "LLMQueryError"
        assert "over the limit of 1,048,576" in too_big.error.value

        # Kernel code can bypass llm_query and write to the socket itself: the host must
        # drop an oversized frame as it arrives, not after holding all of it.
        # Measured from a fresh baseline: this process's peak so far (earlier tests, other
        # sandboxes) would otherwise hide any growth.
        peak_before = reset_peak_rss_kib()
        flood = await box.execute(
            "import os, zmq\n"
            "s = zmq.Context.instance().socket(zmq.DEALER)\n"
            "s.connect(os.environ['RLM_CALLBACK_ENDPOINT'])\n"
            "s.send_multipart([b'rlm-callback/1', b'sig', b'\\0' * 300_000_000])\n"
            "s.close(linger=5000)"
        )
        assert flood.ok, flood.error
        # The send goes on in the background: give the host time to take all of it in
        # (it would then count a bad signature) or to drop it.
        for _ in range(30):
            if box.callbacks_rejected:
                break
            await asyncio.sleep(0.1)
        assert (await box.execute("print(llm_query('ok'))")).stdout == "answer to ok\n"
        peak_growth_kib = peak_rss_kib() - peak_before
    assert peak_growth_kib < 100 * 1024
    assert [r.prompt for r, _, _ in handler.calls] == ["ok"]


class StuckHandler:
    """A handler that answers only after an hour, noting whether it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.answered = False

    async def __call__(self, request: LLMRequest) -> str:
        if request.prompt == "fast":
            return "answer to fast"
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.answered = True  # what would charge the budget: it must never happen
        return "too late"


@pytest.mark.container
async def test_a_timed_out_execute_cancels_its_llm_query() -> None:
    handler = StuckHandler()
    async with Sandbox("x", llm_handler=handler) as box:
        result = await box.execute("llm_query('slow')", timeout=1)
        assert result.timed_out and handler.started.is_set()
        # Cancelled by the time execute returns, not merely asked to stop.
        assert handler.cancelled.is_set() and not handler.answered
        after = await box.execute("print(llm_query('fast'))")
        assert after.stdout == "answer to fast\n", after.error


@pytest.mark.container
async def test_a_restart_cancels_the_llm_query_of_the_dead_kernel() -> None:
    handler = StuckHandler()
    async with Sandbox("x", llm_handler=handler) as box:
        # The kernel dies while its llm_query waits: execute restarts it.
        result = await box.execute(
            "import os, signal, threading\n"
            "threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGKILL)).start()\n"
            "llm_query('slow')"
        )
        assert result.restarted and handler.started.is_set()
        assert handler.cancelled.is_set() and not handler.answered
        after = await box.execute("print(llm_query('fast'))")
        assert after.stdout == "answer to fast\n", after.error


def test_callback_timeout_may_not_exceed_the_execute_timeout() -> None:
    assert SandboxLimits().callback_timeout == SandboxLimits().execute_timeout
    assert SandboxLimits(execute_timeout=5).callback_timeout == 5
    with pytest.raises(ValueError, match="may not exceed execute_timeout"):
        SandboxLimits(execute_timeout=5, callback_timeout=6)
