"""An evaluation run through the loopback cluster against the scripted endpoint: the
driver writes one record per task, even when a node dies with tasks in flight."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rlm.batch import RLMRecipe
from rlm.batch.loopback import LoopbackCluster
from rlm.batch.ray_executor import RayExecutor
from rlm.eval.runner import Evaluation
from rlm.eval.solvers import SolverRecipe
from rlm.eval.store import ResultStore
from rlm.eval.tasks import plan
from tests.eval.policies import needle_search
from tests.fakes.model_server import FakeModelServer

pytestmark = pytest.mark.ray

WAIT_S = 120.0


RECIPE = RLMRecipe("openai", "gpt-test", {"runtime": "local", "max_iterations": 3})


def sniah_evaluation(out: Path, address: str, n: int) -> Evaluation:
    """n S-NIAH tasks at two lengths, on the cluster; the key and endpoint travel in the
    tasks' runtime environment (the nodes started without them)."""
    return Evaluation(
        plan(["sniah"], [1 << 13, 1 << 14], n, seed=0),
        SolverRecipe(RECIPE),
        ResultStore(out),
        run_info={"backend": "openai", "model": "gpt-test"},
        executor=RayExecutor(address, env_vars=RECIPE.forwarded_env()),
    )


def node_is_fine() -> None:
    return None


async def until_ray_sees_dead(ip: str) -> None:
    """Wait until Ray lists the node at `ip` as dead (its health checks take a while)."""
    import ray

    async with asyncio.timeout(WAIT_S):
        while any(n["NodeManagerAddress"] == ip and n["Alive"] for n in ray.nodes()):
            await asyncio.sleep(0.5)


def lines_per_task(out: Path) -> Counter[str]:
    return Counter(json.loads(line)["id"] for line in out.read_text().splitlines())


async def test_every_task_recorded_once_though_a_node_dies_mid_run(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    ray_cluster.add_node(sandboxes=2, ip="127.0.0.4")
    out = tmp_path / "sniah.jsonl"
    evaluation = sniah_evaluation(out, ray_cluster.address, n=6)
    capacity = sum(node.sandboxes for node in evaluation.executor.connect())
    assert capacity == 6
    # Hold every model reply until all sandboxes are busy, so the lost node has tasks
    # waiting on the model when it dies.
    all_busy, release = threading.Event(), threading.Event()
    seen: list[Any] = []

    def held(request: Any) -> str:
        seen.append(request)
        if len(seen) >= capacity:
            all_busy.set()
        release.wait(WAIT_S)
        return needle_search(request)

    openai_server.handler = held
    running = asyncio.ensure_future(evaluation.run())
    try:
        assert await asyncio.to_thread(all_busy.wait, WAIT_S), "the sandboxes never all got busy"
        await asyncio.to_thread(ray_cluster.kill, "127.0.0.4")
        release.set()
        records = await asyncio.wait_for(running, WAIT_S * 2)
        # The cluster is shared by the session's tests: they expect the two first nodes only.
        await until_ray_sees_dead("127.0.0.4")
        # The executor listed that node when it connected: probing it now drops it from the
        # executor's nodes instead of failing the check.
        await asyncio.to_thread(evaluation.executor.check_nodes, node_is_fine)
        assert sorted(node.ip for node in evaluation.executor.nodes) == ["127.0.0.2", "127.0.0.3"]
    finally:
        release.set()
        running.cancel()
        evaluation.executor.close()
    assert len(records) == 12
    assert lines_per_task(out) == Counter({spec.id: 1 for spec in evaluation.specs})
    assert [record["score"] for record in records] == [1.0] * 12
    # The two tasks lost with the node asked the model again elsewhere.
    assert len(openai_server.requests) == 12 + 2


async def test_a_rerun_resumes_without_rerunning_recorded_tasks(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "sniah.jsonl"
    for n in (1, 2):
        evaluation = sniah_evaluation(out, ray_cluster.address, n)
        try:
            await evaluation.run()
        finally:
            evaluation.executor.close()
    assert lines_per_task(out) == Counter({f"sniah-{length}-{i}": 1 for length in (8192, 16384)
                                           for i in range(2)})  # fmt: skip
    assert len(openai_server.requests) == 4
