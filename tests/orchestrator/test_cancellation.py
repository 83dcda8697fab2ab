"""An llm_query ends with the execute that asked for it, child runs included."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.sandbox import LLMHandler, Sandbox
from rlm.sandbox.engine import get_engine
from tests.orchestrator.helpers import RecordingFactory, is_child, read_trace, repl

pytestmark = pytest.mark.container


@dataclass
class ParentKillingFactory(RecordingFactory):
    """Kills the root's kernel as soon as a child run has its sandbox: the root's execute
    then ends by a restart while its llm_query is still running the child."""

    kills: list[asyncio.Task[None]] = field(default_factory=list)

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        sandbox = await super().acquire(context, llm_handler, depth)
        if depth == 1:
            # In the background: the child run must hold its sandbox before the root's
            # restart can cancel it.
            self.kills.append(asyncio.create_task(asyncio.to_thread(kill, self.container_ids[0])))
        return sandbox


def kill(container_id: str | None) -> None:
    get_engine().client.containers.get(container_id).kill()


async def test_a_cancelled_child_run_releases_its_sandbox(trace_path) -> None:  # type: ignore[no-untyped-def]
    released_when_root_resumed: list[int] = []

    def model(messages: list[Message], model: str) -> str:
        if is_child(messages):
            return repl("import time\ntime.sleep(3600)")
        if len(messages) == 1:
            return repl("print(llm_query('work on this for an hour'))")
        # Not merely when the whole completion ends: by the time the root's execute returns.
        released_when_root_resumed.extend(depth for depth, _ in factory.released)
        return repl("FINAL('gave up on the child')")

    factory = ParentKillingFactory()
    rlm = RLM(
        ScriptedBackend(model),
        model="big",
        recursive_model="small",
        max_depth=2,
        sandbox_factory=factory,
        trace=trace_path,
    )
    result = await rlm.acompletion("the root context", "q")
    await asyncio.gather(*factory.kills)

    assert (result.success, result.answer) == (True, "gave up on the child"), result.error
    assert released_when_root_resumed == [1]
    assert sorted(depth for depth, _ in factory.released) == [0, 1]
    child_id = factory.container_ids[1]
    assert child_id is not None
    engine = get_engine()
    with pytest.raises(docker.errors.NotFound):
        engine.client.containers.get(child_id)
    (call,) = (e for e in read_trace(trace_path) if e["type"] == "sub_call")
    assert call["kind"] == "rlm" and call["error"] == "cancelled"
