"""Sub-calls: batched chunking, and the depth rule (child runs, plain calls, disabled)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator import SandboxFactory, WarmPoolFactory
from rlm.sandbox import removals
from rlm.sandbox.engine import get_engine
from rlm.sandbox.pool import SandboxPool
from rlm.sandbox.rundir import OWNER_LABEL, owner_id
from tests.orchestrator.helpers import (
    RecordingFactory,
    is_child,
    is_sub_prompt,
    last_user,
    read_trace,
    repl,
)

FRUIT = ["apple", "pear", "plum"]


def fruit_context() -> str:
    return "\n".join(f"basket {i}: {FRUIT[i % 3]} {FRUIT[i * 7 % 3]}" for i in range(400))


@pytest.mark.container
async def test_chunking_with_batched_sub_calls_and_aggregation() -> None:
    context = fruit_context()

    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            assert model == "small"
            _, text = messages[0]["content"].split("\n", 1)
            return str(text.count("apple"))
        if len(messages) == 1:
            return repl(
                "lines = CONTEXT.splitlines()\n"
                "chunks = ['\\n'.join(lines[i:i + 100]) for i in range(0, len(lines), 100)]\n"
                "counts = llm_query_batched([f'How many apples?\\n{c}' for c in chunks])\n"
                "print(json.dumps(counts))",
                "Split into chunks of whole lines and count in each.",
            )
        counts = json.loads(re.search(r"\[.*\]", last_user(messages)).group(0))
        return repl(f"FINAL(str(sum(map(int, {counts!r}))))")

    factory = RecordingFactory()
    rlm = RLM(
        ScriptedBackend(model),
        model="big",
        recursive_model="small",
        max_depth=1,
        sandbox_factory=factory,
    )
    result = await rlm.acompletion(context, "How many apples are there?")

    assert (result.success, result.answer) == (True, str(context.count("apple")))
    assert result.stats.sub_calls == {1: 4} and result.stats.child_runs == 0
    sub_calls = result.history[0]["sub_calls"]
    assert sorted(call["batch_index"] for call in sub_calls) == [0, 1, 2, 3]
    assert {call["kind"] for call in sub_calls} == {"model"}
    assert [depth for depth, _ in factory.acquired] == [0]
    assert factory.acquired[0][1].runtime == "container"


@pytest.mark.container
async def test_depth_two_runs_a_child_rlm_in_its_own_container(trace_path) -> None:  # type: ignore[no-untyped-def]
    sub_prompt = "Find the number after MAGIC in: xx MAGIC 977 yy"

    def model(messages: list[Message], model: str) -> str:
        if is_child(messages):
            assert model == "small"
            if len(messages) == 1:
                return repl(
                    "number = re.search(r'MAGIC (\\d+)', CONTEXT).group(1)\n"
                    "FINAL(f\"{number} (root_secret visible: {'root_secret' in globals()})\")"
                )
        assert model == "big"
        if len(messages) == 1:
            return repl(f"root_secret = 1\nprint(llm_query({sub_prompt!r}))")
        return repl(f"FINAL({last_user(messages).splitlines()[1]!r})")

    factory = RecordingFactory()
    rlm = RLM(
        ScriptedBackend(model),
        model="big",
        recursive_model="small",
        max_depth=2,
        sandbox_factory=factory,
        trace=trace_path,
    )
    result = await rlm.acompletion("the root context", "What is the magic number?")

    assert (result.success, result.answer) == (True, "977 (root_secret visible: False)")
    assert result.stats.sub_calls == {1: 1} and result.stats.child_runs == 1
    assert result.stats.model_calls == 3  # two root replies, one child reply
    assert [depth for depth, _ in factory.acquired] == [0, 1]
    assert all(box.runtime == "container" and box.closed for _, box in factory.acquired)
    assert sorted(depth for depth, _ in factory.released) == [0, 1]
    events = read_trace(trace_path)
    root_start, child_start = (e for e in events if e["type"] == "start")
    assert child_start["depth"] == 1 and child_start["parent_id"] == root_start["run_id"]
    assert child_start["query"] != "What is the magic number?"
    (call,) = (e for e in events if e["type"] == "sub_call")
    assert call["kind"] == "rlm" and call["child_run_id"] == child_start["run_id"]


async def test_max_depth_one_makes_sub_calls_plain_model_calls() -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return f"plain answer to {messages[0]['content']!r}"
        return repl("FINAL(llm_query('hello'))")

    backend = ScriptedBackend(model)
    factory = RecordingFactory(runtime="local")
    result = await RLM(backend, max_depth=1, sandbox_factory=factory).acompletion("x", "q")
    assert result.answer == "plain answer to 'hello'"
    assert backend.calls[1].system is None and len(backend.calls[1].messages) == 1
    assert [depth for depth, _ in factory.acquired] == [0]
    assert result.stats.sub_calls == {1: 1} and result.stats.child_runs == 0


async def test_max_depth_zero_disables_llm_query() -> None:
    backend = ScriptedBackend(
        [repl("try:\n    llm_query('hi')\nexcept Exception as e:\n    FINAL(str(e))")]
    )
    result = await RLM(backend, max_depth=0, runtime="local").acompletion("x", "q")
    assert "llm_query is disabled (max_depth=0)" in result.answer
    assert len(backend.calls) == 1 and result.stats.sub_calls == {}


@pytest.mark.parametrize("composed", [False, True], ids=["warm_pool=1", "WarmPoolFactory"])
async def test_child_runs_start_from_the_warm_pool(monkeypatch, composed: bool) -> None:  # type: ignore[no-untyped-def]
    pools: list[SandboxPool] = []

    class RecordedPool(SandboxPool):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr("rlm.orchestrator.sandboxes.SandboxPool", RecordedPool)

    async def model(messages: list[Message], model: str) -> str:
        if is_child(messages):
            return repl("FINAL(CONTEXT.split()[-1] + ' ' + str(len(globals())))")
        if len(messages) == 1:
            return repl("print('the pool fills once the root has its sandbox')")
        if len(messages) == 3:
            # The root asks for a child run only once a warm kernel is waiting for it.
            (pool,) = pools
            async with asyncio.timeout(120):
                while pool.ready < 1:
                    await asyncio.sleep(0.05)
            return repl("print(llm_query('the answer is 42'))")
        return repl(f"FINAL({last_user(messages).splitlines()[1].split()[0]!r})")

    if composed:
        factory = WarmPoolFactory(SandboxFactory(runtime="local"), size=1)
        rlm = RLM(ScriptedBackend(model), max_depth=2, sandbox_factory=factory)
    else:
        rlm = RLM(ScriptedBackend(model), max_depth=2, runtime="local", warm_pool=1)
    result = await rlm.acompletion("root context", "q")

    assert (result.success, result.answer) == (True, "42")
    assert result.stats.child_runs == 1
    (pool,) = pools
    assert pool.stats()["hits"] == 1
    assert pool.ready == 0  # closed with the completion: nothing left waiting


@pytest.mark.container
async def test_a_child_answers_and_the_pool_closes_without_waiting_for_removals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Removals are held back until the completion has returned: had the child's answer or
    the pool's close waited for one, the completion could not have finished."""
    gate = threading.Event()
    remove = removals._remove

    def held_back(*removal: Any) -> None:
        gate.wait(120)
        remove(*removal)

    monkeypatch.setattr(removals, "_remove", held_back)
    held: list[int] = []

    async def model(messages: list[Message], model: str) -> str:
        if is_child(messages):
            return repl("FINAL('from the child')")
        if len(messages) == 1:
            return repl("print(llm_query('ask a child'))")
        held.append(removals.pending())  # the child's removal, still held back
        return repl(f"FINAL({last_user(messages).splitlines()[1]!r})")

    factory = WarmPoolFactory(SandboxFactory(runtime="container"), size=1)
    rlm = RLM(ScriptedBackend(model), max_depth=2, sandbox_factory=factory)
    try:
        async with asyncio.timeout(120):
            result = await rlm.acompletion("root context", "q")
        waiting = removals.pending()
    finally:
        gate.set()
    await removals.drain()
    assert (result.success, result.answer) == (True, "from the child")
    assert held == [1]
    assert waiting >= 1  # at least the child's, still held back when the completion returned
    assert not _containers_of_this_process()


def _containers_of_this_process() -> list[str]:
    found = get_engine().client.containers.list(
        all=True, sparse=True, filters={"label": f"{OWNER_LABEL}={owner_id()}"}
    )
    return [container.id for container in found]


def test_a_warm_pool_is_given_once() -> None:
    factory = WarmPoolFactory(SandboxFactory(runtime="local"), size=1)
    with pytest.raises(ValueError, match="warm_pool or a WarmPoolFactory"):
        RLM(ScriptedBackend([]), max_depth=2, sandbox_factory=factory, warm_pool=2)
    # Without child runs there is nothing to pool.
    plain = RLM(ScriptedBackend([]), max_depth=1, runtime="local", warm_pool=2)
    assert isinstance(plain.sandbox_factory, SandboxFactory)


async def test_code_may_only_pick_allowed_models_for_sub_calls() -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return f"{model} says hi"
        if len(messages) == 1:
            return repl(
                "print(llm_query('a', model='cheap'))\n"
                "try:\n"
                "    llm_query('b', model='very-expensive')\n"
                "except Exception as e:\n"
                "    print(e)"
            )
        return repl(f"FINAL({last_user(messages)!r})")

    rlm = RLM(ScriptedBackend(model), max_depth=1, runtime="local", sub_models=["cheap"])
    result = await rlm.acompletion("x", "q")
    assert "cheap says hi" in result.answer
    assert "may not use model 'very-expensive'" in result.answer
    assert result.stats.model_calls == 3  # two root replies and the one allowed sub-call
