"""llm_query over the signed callback channel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvloop

from rlm.kernel_image.rlm_kernel.protocol import FRAME_HEADER, SIGNATURE_BYTES, Signer
from rlm.sandbox import LLMRequest
from rlm.sandbox.callback import CallbackServer
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


async def test_a_forked_child_gets_a_connection_of_its_own(runtime: str) -> None:
    """Parent and child ask at once after a fork: sharing the parent's socket, each would
    read answers meant for the other and wait for its own until the timeout."""
    handler = RecordingHandler(delay=0.002)
    limits = SandboxLimits(callback_timeout=5)
    async with Sandbox("x", llm_handler=handler, runtime=runtime, limits=limits) as box:
        result = await box.execute(
            "import os\n"
            "def ask(who):\n"
            "    try:\n"
            "        return all(\n"
            "            llm_query(f'{who} {i}') == f'answer to {who} {i}' for i in range(20)\n"
            "        )\n"
            "    except Exception:\n"
            "        return False\n"
            "llm_query('before the fork')\n"
            "read, write = os.pipe()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.write(write, b'1' if ask('child') else b'0')\n"
            "    os._exit(0)\n"
            "parent = ask('parent')\n"
            "os.waitpid(pid, 0)\n"
            "print(parent, os.read(read, 1) == b'1')",
            timeout=60,
        )
    assert result.stdout == "True True\n", (result.stdout, result.error)


async def read_reply(reader: asyncio.StreamReader, signer: Signer) -> dict[str, object]:
    (size,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    return signer.unpack(await reader.readexactly(size))


async def test_forged_and_replayed_messages_are_rejected(
    sandbox: Sandbox, handler: RecordingHandler
) -> None:
    assert sandbox.run_dir is not None
    path = sandbox.run_dir / "k" / "callback"
    key = json.loads((sandbox.run_dir / "callback.json").read_text())["key"].encode()
    request = {"id": "1", "type": "llm_query", "prompt": "forged", "model": None}
    # Each bad frame ends its connection; the host's server runs in this test's event loop.
    for bad in (
        Signer(b"not-the-key").pack(request),
        FRAME_HEADER.pack(SIGNATURE_BYTES + 2) + bytes(SIGNATURE_BYTES) + b"{}",  # unsigned
        FRAME_HEADER.pack(3) + b"abc",  # too short to carry a signature
    ):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(bad)
        assert await reader.read() == b""  # closed by the host, unanswered
        writer.close()
    # A correctly signed message, sent twice: the copy is a replay.
    reader, writer = await asyncio.open_unix_connection(path)
    genuine = Signer(key).pack({**request, "prompt": "genuine"})
    writer.write(genuine)
    reply = await asyncio.wait_for(read_reply(reader, Signer(key)), 5)
    assert reply == {"status": "ok", "result": "answer to genuine", "re": "1"}
    writer.write(genuine)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert [r.prompt for r, _, _ in handler.calls] == ["genuine"]
    assert sandbox.callbacks_rejected == 4


async def test_pipelined_requests_are_served_within_the_in_flight_cap(runtime: str) -> None:
    # Many requests written at once on one connection (what a hostile kernel can do):
    # all answered in order of arrival, never more than the cap at a time.
    handler = RecordingHandler(delay=0.05)
    limits = SandboxLimits(callback_in_flight=4)
    async with Sandbox("x", llm_handler=handler, runtime=runtime, limits=limits) as box:
        result = await box.execute(
            "import hashlib, hmac, os, socket, struct\n"
            "key = json.load(open(os.environ['RLM_CALLBACK_FILE']))['key'].encode()\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(os.environ['RLM_CALLBACK_ENDPOINT'])\n"
            "def signed(message):\n"
            "    payload = json.dumps(message).encode()\n"
            "    body = hmac.new(key, payload, hashlib.sha256).digest() + payload\n"
            "    return struct.pack('!I', len(body)) + body\n"
            "s.sendall(b''.join(signed({'id': str(i), 'type': 'llm_query', 'prompt': f'p{i}'})"
            " for i in range(20)))\n"
            "f = s.makefile('rb')\n"
            "ids = []\n"
            "for _ in range(20):\n"
            "    size, = struct.unpack('!I', f.read(4))\n"
            "    ids.append(json.loads(f.read(size)[32:])['re'])\n"
            "print(sorted(ids, key=int) == [str(i) for i in range(20)])",
            timeout=60,
        )
        assert result.stdout == "True\n", result.error
    spans = [(start, end) for _, start, end in handler.calls]
    most = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
    assert len(spans) == 20 and most == 4


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
            "import os, socket, struct\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(os.environ['RLM_CALLBACK_ENDPOINT'])\n"
            "try:\n"
            "    s.sendall(struct.pack('!I', 300_000_000) + b'\\0' * 300_000_000)\n"
            "except OSError as exc:\n"
            "    print(type(exc).__name__)"
        )
        assert flood.ok, flood.error
        # Refused on its length, before its body: the host closed the connection.
        assert flood.stdout in ("BrokenPipeError\n", "ConnectionResetError\n")
        assert box.callbacks_rejected == 1
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


async def test_the_host_gives_up_on_a_request_at_its_deadline(tmp_path: Path) -> None:
    # The host's own timeout, seen without a kernel (whose client would give up at the same
    # moment): the handler is cancelled and the answer says why, for a single request and
    # a batch alike, and the channel goes on serving.
    stuck = StuckHandler()
    run_dir = SimpleNamespace(
        callback_socket=tmp_path / "callback", callback_key_file=tmp_path / "callback.json"
    )
    server = CallbackServer(run_dir, stuck, request_timeout=0.3)  # type: ignore[arg-type]
    await server.start()
    try:
        signer = Signer(server.key)
        reader, writer = await asyncio.open_unix_connection(run_dir.callback_socket)
        for request in (
            {"id": "1", "type": "llm_query", "prompt": "slow"},
            {"id": "2", "type": "llm_query_batched", "prompts": ["fast", "slow"]},
            {"id": "3", "type": "llm_query", "prompt": "fast"},
        ):
            writer.write(signer.pack(request))
            reply = await asyncio.wait_for(read_reply(reader, signer), 10)
            assert reply["re"] == request["id"]
            if request["id"] == "3":
                assert reply["result"] == "answer to fast"
            else:
                assert reply["error"] == "TimeoutError: no answer in 0.3 s"
        writer.close()
    finally:
        await server.close()
    assert stuck.cancelled.is_set() and not stuck.answered


def test_the_channel_works_on_uvloop() -> None:
    """Ray's workers run their event loop on uvloop, whose transports are not
    asyncio.Transport instances: the kernel's context and llm_query must still go through."""

    async def run() -> tuple[str, str]:
        async with Sandbox(["started"], runtime="local", llm_handler=RecordingHandler()) as box:
            started = (await box.execute("print(CONTEXT[0])")).stdout
            await box.load_context("loaded")
            asked = await box.execute("print(CONTEXT, llm_query('hi'))")
        assert asked.error is None, asked.error
        return started, asked.stdout

    assert uvloop.run(run()) == ("started\n", "loaded answer to hi\n")
