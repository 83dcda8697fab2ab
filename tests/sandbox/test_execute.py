"""Running code: state, CONTEXT, output, errors, timeouts, FINAL."""

from __future__ import annotations

import asyncio
import json

import pytest

from rlm.errors import KernelDiedError
from rlm.sandbox.channels import KernelChannels
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.rootless


async def test_state_persists_across_executes(sandbox: Sandbox) -> None:
    await sandbox.execute("counter = 41")
    result = await sandbox.execute("counter += 1\ncounter")
    assert result.ok
    assert result.results == ["42"]


async def test_output_and_errors_are_reported(sandbox: Sandbox) -> None:
    result = await sandbox.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)\n1/0")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.error is not None
    assert result.error.name == "ZeroDivisionError"
    assert "division by zero" in result.error.value
    assert "ZeroDivisionError" in result.error.traceback
    assert "\x1b[" not in result.error.traceback
    assert result.duration > 0


async def test_context_and_preloaded_modules(sandbox: Sandbox) -> None:
    result = await sandbox.execute(
        "print(type(CONTEXT).__name__, len(CONTEXT), context is CONTEXT)\n"
        "print(len(re.findall('beta', CONTEXT)), json.dumps([1]), math.sqrt(4))\n"
        "print(collections.Counter('aab')['a'], list(itertools.islice('xyz', 2)))"
    )
    assert result.stdout.splitlines() == ["str 1700 True", "100 [1] 2.0", "2 ['x', 'y']"]


async def test_json_context(runtime: str) -> None:
    async with Sandbox(["first", "second"], runtime=runtime) as box:
        result = await box.execute("print(type(CONTEXT).__name__, CONTEXT[1])")
    assert result.stdout.strip() == "list second"
    async with Sandbox({"a": [1, 2]}, runtime=runtime) as box:
        result = await box.execute("print(json.dumps(CONTEXT))")
    assert json.loads(result.stdout) == {"a": [1, 2]}


async def test_large_context_loads_and_is_searchable(runtime: str) -> None:
    needle = "The vault code is 7309-4418."
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1_800_000
    half = len(filler) // 2
    document = filler[:half] + needle + filler[half:]
    assert len(document) > 100_000_000
    async with Sandbox(document, runtime=runtime) as box:
        result = await box.execute(
            "print(len(CONTEXT))\nprint(re.search(r'vault code is ([\\d-]+)', CONTEXT).group(1))"
        )
    assert result.stdout.split() == [str(len(document)), "7309-4418"]


async def test_reserved_names_are_restored(sandbox: Sandbox) -> None:
    result = await sandbox.execute("llm_query = None\nCONTEXT = 'gone'")
    assert sorted(result.restored_names) == ["CONTEXT", "llm_query"]
    check = await sandbox.execute("print(callable(llm_query), len(CONTEXT))")
    assert check.stdout.strip() == "True 1700"


async def test_final_and_final_var(sandbox: Sandbox) -> None:
    assert (await sandbox.execute("x = 1")).final is None
    assert (await sandbox.execute("FINAL('forty-two')")).final == "forty-two"
    # A dict answer is written as JSON.
    assert (await sandbox.execute("answer = {'n': 42}\nFINAL_VAR('answer')")).final == '{"n": 42}'
    missing = await sandbox.execute("FINAL_VAR('nope')")
    assert missing.final is None
    assert missing.error is not None and "nope" in missing.error.value
    # A FINAL from an earlier execute does not linger.
    assert (await sandbox.execute("y = 2")).final is None


async def test_huge_print_is_capped(runtime: str) -> None:
    limits = SandboxLimits(output_chars=10_000)
    async with Sandbox("x", runtime=runtime, limits=limits) as box:
        result = await box.execute("print('x' * 50_000_000)\nfor i in range(100_000): print(i)")
        assert len(result.stdout) <= 10_000
        assert result.truncated
        assert result.dropped_chars > 50_000_000 - 10_000
        # The kernel is fine afterwards and the cap is per execute.
        assert (await box.execute("print('after')")).stdout == "after\n"


async def test_infinite_loop_is_interrupted(sandbox: Sandbox) -> None:
    await sandbox.execute("kept = 'state'")
    result = await sandbox.execute("while True:\n    pass", timeout=1.0)
    assert result.timed_out
    assert not result.restarted
    assert result.error is not None and "timeout" in result.error.value
    assert (await sandbox.execute("print(kept)")).stdout.strip() == "state"


async def test_code_ignoring_interrupts_gets_a_restart(runtime: str) -> None:
    limits = SandboxLimits(interrupt_grace=1.0)
    async with Sandbox("x", runtime=runtime, limits=limits) as box:
        await box.execute("kept = 1")
        result = await box.execute(
            "import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n    time.sleep(0.05)",
            timeout=1.0,
        )
        assert result.timed_out and result.restarted
        assert result.error is not None and result.error.name == "KernelRestarted"
        after = await box.execute("print('kept' in globals(), len(CONTEXT))")
        assert after.stdout.strip() == "False 1"


async def test_kernel_that_never_replies_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rlm.sandbox.sandbox.REPLY_GRACE", 0.5)
    async with Sandbox("x", runtime="local") as box:
        await box.execute(
            "def _broken(*args, **kwargs):\n"
            "    raise RuntimeError('bug in the kernel')\n"
            "get_ipython().kernel._run_cell_now = _broken"
        )
        result = await box.execute("1 + 1", timeout=30)
    assert result.error is not None
    assert result.error.name == "KernelError"
    assert not result.timed_out


async def test_local_kernel_works_in_its_run_directory() -> None:
    async with Sandbox("x", runtime="local") as box:
        result = await box.execute("import os; print(os.getcwd())")
        assert box.run_dir is not None
        assert result.stdout.strip() == str(box.run_dir / "k")


async def test_malformed_reply_fields_from_the_kernel_are_ignored() -> None:
    async with Sandbox("x", runtime="local") as box:
        await box.execute(
            "_kernel = get_ipython().kernel\n"
            "_real = type(_kernel)._run_cell_now\n"
            "def _forged(self, *args, **kwargs):\n"
            "    reply = _real(self, *args, **kwargs)\n"
            "    reply['rlm'] = {'final': {'not': 'a string'}, 'output_dropped': 'many',\n"
            "                    'restored': [1, 'x']}\n"
            "    return reply\n"
            "_kernel._run_cell_now = _forged.__get__(_kernel)"
        )
        result = await box.execute("y = 1")
    assert result.ok
    assert (result.final, result.dropped_chars, result.restored_names) == (None, 0, ["x"])


async def test_a_kernel_that_never_answers_kernel_info_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def nothing(self: KernelChannels, channel: str, timeout: float) -> None:
        await asyncio.sleep(timeout)

    monkeypatch.setattr(KernelChannels, "receive", nothing)
    box = Sandbox("x", runtime="local", limits=SandboxLimits(start_timeout=0.5))
    with pytest.raises(KernelDiedError, match=r"did not start: no kernel_info reply within 0\.5 s"):
        await box.start()


async def test_a_start_has_one_kernel_info_request_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kernel slow to answer gets no second kernel_info meanwhile: two in flight could
    leave rlm's kernel never reading its shell socket again."""
    sent = answered = most = 0
    real_kernel_info, real_receive = KernelChannels.kernel_info, KernelChannels.receive

    def kernel_info(self: KernelChannels) -> str:
        nonlocal sent, most
        sent += 1
        most = max(most, sent - answered)
        return real_kernel_info(self)

    async def receive(self: KernelChannels, channel: str, timeout: float) -> object:
        nonlocal answered
        # Waits cut short: to the start, the kernel answers late every time.
        msg = await real_receive(self, channel, min(timeout, 0.01))
        answered += msg is not None and msg["msg_type"] == "kernel_info_reply"
        return msg

    monkeypatch.setattr(KernelChannels, "kernel_info", kernel_info)
    monkeypatch.setattr(KernelChannels, "receive", receive)
    async with Sandbox("x", runtime="local") as box:
        assert (await box.execute("x = 1")).ok
    assert sent >= 1 and most == 1
