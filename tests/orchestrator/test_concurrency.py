"""acompletion is truly async; completion works with and without a running loop;
cancelling releases sandboxes."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from tests.orchestrator.helpers import RecordingFactory, repl


@pytest.mark.container
async def test_concurrent_acompletions_each_with_its_own_container() -> None:
    runs = 3
    first_calls = 0
    everyone_called = asyncio.Event()

    async def model(messages: list[Message], model: str) -> str:
        nonlocal first_calls
        if len(messages) == 1:
            # A barrier: no run gets its first reply until all have asked. Runs that
            # did not overlap in one event loop would wait here until the timeout.
            first_calls += 1
            if first_calls == runs:
                everyone_called.set()
            await asyncio.wait_for(everyone_called.wait(), 60)
            return repl("mine = CONTEXT.upper()\nprint(mine)")
        return repl("FINAL(mine)")

    factory = RecordingFactory()
    rlm = RLM(ScriptedBackend(model), sandbox_factory=factory)
    results = await asyncio.gather(*(rlm.acompletion(f"doc {i}", "Shout") for i in range(runs)))
    assert [r.answer for r in results] == [f"DOC {i}" for i in range(runs)]
    assert None not in factory.container_ids and len(set(factory.container_ids)) == runs
    assert all(box.closed for _, box in factory.acquired)


def test_sync_completion_outside_a_loop() -> None:
    rlm = RLM(ScriptedBackend([repl("FINAL(CONTEXT[::-1])")]), runtime="local")
    assert rlm.completion("abc", "Reverse").answer == "cba"


async def test_sync_completion_inside_a_running_loop() -> None:
    rlm = RLM(ScriptedBackend([repl("FINAL(CONTEXT[::-1])")]), runtime="local")
    assert rlm.completion("abc", "Reverse").answer == "cba"


@pytest.mark.container
async def test_cancelling_acompletion_removes_its_container() -> None:
    factory = RecordingFactory()
    rlm = RLM(ScriptedBackend([repl("import time\ntime.sleep(120)")]), sandbox_factory=factory)
    task = asyncio.create_task(rlm.acompletion("x", "q"))
    while not factory.acquired:
        await asyncio.sleep(0.05)
    box, container = factory.acquired[0][1], factory.container_ids[0]
    assert container is not None
    await asyncio.sleep(0.5)  # let the sleep start in the kernel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert box.closed and factory.released == [(0, box)]
    exists = subprocess.run(["podman", "container", "exists", container], check=False)
    assert exists.returncode == 1
