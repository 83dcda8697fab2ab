"""The Ray executor on a real two-node cluster on loopback: placement, limits, secrets,
streaming, and the setup problems reported as one line."""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm.batch import ExecutorSetupError, RLMRecipe, RuntimeProbe, abatch, batch
from rlm.batch.loopback import LoopbackCluster
from rlm.batch.ray_executor import RayExecutor
from tests.batch.conftest import SANDBOXES_PER_NODE
from tests.batch.jobs import Explode, WaitForCancel, WhereAndWhen
from tests.eval.policies import needle_search
from tests.fakes.model_server import FakeModelServer

pytestmark = pytest.mark.ray


async def collect(executor: RayExecutor, job: Any, inputs: list[Any]) -> list[Any]:
    try:
        return [output async for _, output in executor.stream(job, inputs)]
    finally:
        executor.close()


async def test_jobs_spread_over_both_nodes_within_each_nodes_sandboxes(
    ray_cluster: LoopbackCluster,
) -> None:
    executor = RayExecutor(ray_cluster.address, env_vars={"RLM_TEST_SECRET": "s3cret"})
    nodes = executor.connect()
    assert sorted((node.ip, node.sandboxes) for node in nodes) == [
        ("127.0.0.2", SANDBOXES_PER_NODE),
        ("127.0.0.3", SANDBOXES_PER_NODE),
    ]
    outputs = await collect(executor, WhereAndWhen(), list(range(12)))
    assert sorted(item for item, *_ in outputs) == list(range(12))
    assert {node for _, node, *_ in outputs} == {"127.0.0.2", "127.0.0.3"}
    # The secret reached the workers through the runtime environment only.
    assert {secret for _, _, secret, *_ in outputs} == {"s3cret"}
    for ip in ("127.0.0.2", "127.0.0.3"):
        spans = [(start, end) for _, node, _, start, end in outputs if node == ip]
        # Jobs running on the node at the moment each of its jobs started.
        most = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
        assert most <= SANDBOXES_PER_NODE


async def test_concurrency_caps_jobs_in_flight(ray_cluster: LoopbackCluster) -> None:
    executor = RayExecutor(ray_cluster.address, concurrency=1)
    outputs = await collect(executor, WhereAndWhen(seconds=0.05), list(range(5)))
    spans = sorted((start, end) for *_, start, end in outputs)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


async def test_a_job_raising_ends_the_stream_with_its_own_exception(
    ray_cluster: LoopbackCluster,
) -> None:
    with pytest.raises(LookupError, match="no answer for"):
        await collect(RayExecutor(ray_cluster.address), Explode(), [1, 2])


async def test_leaving_the_stream_lets_the_running_jobs_clean_up(
    ray_cluster: LoopbackCluster, tmp_path: Path
) -> None:
    executor = RayExecutor(ray_cluster.address, concurrency=2)
    outputs = executor.stream(WaitForCancel(str(tmp_path)), [0, 1, 2])
    consuming = asyncio.ensure_future(anext(outputs))
    try:
        for _ in range(1200):  # at most 120 s
            if len(list(tmp_path.glob("started-*"))) == 2:
                break
            await asyncio.sleep(0.1)
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await outputs.aclose()
    finally:
        executor.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "cleaned-0", "cleaned-1", "started-0", "started-1",
    ]  # fmt: skip


def test_batch_answers_every_pair_on_the_cluster(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer
) -> None:
    openai_server.handler = needle_search
    pairs = [
        (f"filler. The special magic numbers for key{i} is: {1000 + i}. more filler.",
         f"What is the special magic number for key{i} mentioned in the text?")
        for i in range(6)
    ]  # fmt: skip
    recipe = RLMRecipe("openai", "gpt-test", {"runtime": "local", "max_iterations": 3})
    results = batch(recipe, pairs, executor="ray", ray_address=ray_cluster.address)
    assert [result.answer for result in results] == [str(1000 + i) for i in range(6)]
    assert all(result.success for result in results)


async def test_abatch_streams_locally_by_default(openai_server: FakeModelServer) -> None:
    openai_server.handler = needle_search
    pairs = [("The special magic numbers for k is: 7.", "special magic number for k mentioned")]
    recipe = RLMRecipe("openai", "gpt-test", {"runtime": "local"})
    done = [result async for result in abatch(recipe, pairs * 3, concurrency=2)]
    assert sorted(result.index for result in done) == [0, 1, 2]
    assert {result.result.answer for result in done} == {"7"}


@pytest.mark.container
def test_every_node_without_the_image_is_named_in_one_line(
    ray_cluster: LoopbackCluster,
) -> None:
    executor = RayExecutor(ray_cluster.address)
    try:
        with pytest.raises(ExecutorSetupError) as failure:
            executor.check_nodes(RuntimeProbe("container", "localhost/rlm-kernel:absent"))
    finally:
        executor.close()
    missing = "kernel image localhost/rlm-kernel:absent not found"
    assert str(failure.value).startswith(f"node 127.0.0.2: {missing}")
    assert f"; node 127.0.0.3: {missing}" in str(failure.value)
    assert "\n" not in str(failure.value)


@pytest.mark.container  # the other nodes' checks reach their engine
def test_a_node_without_an_engine_is_named_in_the_one_line(
    ray_cluster: LoopbackCluster,
) -> None:
    no_engine = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    ray_cluster.add_node(1, "127.0.0.5", no_engine)
    executor = RayExecutor(ray_cluster.address)
    try:
        with pytest.raises(ExecutorSetupError) as failure:
            executor.check_nodes(RuntimeProbe("container"))
    finally:
        executor.close()
        ray_cluster.kill("127.0.0.5")
    message = str(failure.value)
    assert "node 127.0.0.5: DOCKER_HOST=unix:///nonexistent/docker.sock does not answer" in message
    assert "\n" not in message


def test_an_unreachable_cluster_is_one_line() -> None:
    pytest.importorskip("ray")
    with pytest.raises(ExecutorSetupError, match=r"^cannot reach the Ray cluster at 127.0.0.9:1"):
        RayExecutor("127.0.0.9:1", connect_timeout_s=5).connect()


def test_without_ray_the_message_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(ExecutorSetupError, match=r"pip install 'rlm\[ray\]'"):
        batch(RLMRecipe("openai", "m"), [("c", "q")], executor="ray")


def test_a_live_rlm_cannot_travel_to_workers() -> None:
    from rlm.backends import ScriptedBackend
    from rlm.orchestrator import RLM

    with pytest.raises(TypeError, match="RLMRecipe"):
        batch(RLM(ScriptedBackend([])), [("c", "q")], executor="ray")
