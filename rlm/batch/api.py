"""`abatch` / `batch`: many (context, query) pairs answered by one RLM configuration,
locally or on a Ray cluster, results streamed as they finish.

    recipe = RLMRecipe("openai", "gpt-4o", {"max_iterations": 8})
    async for done in abatch(recipe, pairs, executor="ray", ray_address="head:6379"):
        print(done.index, done.result.answer)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlm.backends.base import run_in_fresh_loop
from rlm.batch.executor import Executor, LocalExecutor
from rlm.batch.probe import RuntimeProbe
from rlm.batch.ray_executor import RayExecutor, require_ray
from rlm.batch.recipe import RLMRecipe

if TYPE_CHECKING:
    from rlm.orchestrator import RLM, RLMResult
    from rlm.orchestrator.rlm import Context

Item = tuple["Context", str]
"""(context, query)"""

DEFAULT_CONCURRENCY = 4
"""Local sandboxes at once; on Ray the default is every sandbox the cluster declares."""


@dataclass
class BatchResult:
    index: int
    """Position of the item in the input."""
    query: str
    result: RLMResult


@dataclass(frozen=True)
class RecipeCompletion:
    """The job shipped to workers: build the RLM there, answer one item, close it."""

    recipe: RLMRecipe

    async def __call__(self, item: Item) -> RLMResult:
        rlm = self.recipe.build()
        try:
            return await rlm.acompletion(*item)
        finally:
            await rlm.backend.aclose()


@dataclass(frozen=True)
class LiveCompletion:
    """Local only: answer one item with an RLM object the caller built."""

    rlm: RLM

    async def __call__(self, item: Item) -> RLMResult:
        return await self.rlm.acompletion(*item)


async def abatch(
    rlm: RLM | RLMRecipe,
    items: Iterable[Item],
    *,
    executor: str | Executor = "local",
    concurrency: int | None = None,
    ray_address: str = "auto",
) -> AsyncIterator[BatchResult]:
    """Answer every (context, query) of `items`; yield each result as it finishes.

    `executor`: "local" (this process, `concurrency` sandboxes at once, default 4), "ray"
    (the cluster at `ray_address`, joined for this batch; "auto" is the one this machine
    belongs to), or an Executor of your own. Ray needs `rlm` as an RLMRecipe: a live RLM
    holds a client and key that must not travel. Failures of one item come back in its
    result (success=False); a setup problem (no Ray, no cluster, a node without engine or
    image) raises ExecutorSetupError before any model call.
    """
    pairs = list(items)
    runner, owned = _executor(executor, rlm, concurrency, ray_address)
    try:
        if owned and isinstance(runner, RayExecutor) and isinstance(rlm, RLMRecipe):
            await asyncio.to_thread(_prepare_cluster, runner, rlm)
        job = RecipeCompletion(rlm) if isinstance(rlm, RLMRecipe) else LiveCompletion(rlm)
        outputs = runner.stream(job, pairs)
        async with contextlib.aclosing(outputs):  # leaving early stops the jobs running
            async for index, result in outputs:
                yield BatchResult(index, pairs[index][1], result)
    finally:
        if owned:
            runner.close()


def batch(
    rlm: RLM | RLMRecipe,
    items: Iterable[Item],
    *,
    executor: str | Executor = "local",
    concurrency: int | None = None,
    ray_address: str = "auto",
) -> list[RLMResult]:
    """Blocking variant of `abatch`: every result, in the order of `items`."""

    async def collect() -> list[RLMResult]:
        pairs = list(items)
        results: list[Any] = [None] * len(pairs)
        async for done in abatch(
            rlm, pairs, executor=executor, concurrency=concurrency, ray_address=ray_address
        ):
            results[done.index] = done.result
        return results

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(collect())
    return run_in_fresh_loop(collect())


def _executor(
    executor: str | Executor, rlm: RLM | RLMRecipe, concurrency: int | None, address: str
) -> tuple[Executor, bool]:
    """The executor to use, and whether this batch made it (and so closes it)."""
    if isinstance(executor, Executor):
        return executor, False
    if executor == "local":
        return LocalExecutor(concurrency or DEFAULT_CONCURRENCY), True
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}: use 'local', 'ray' or an Executor")
    if not isinstance(rlm, RLMRecipe):
        raise TypeError(
            "the Ray executor takes an RLMRecipe, not an RLM: a live RLM holds its "
            "client and key, which must not travel to workers"
        )
    require_ray()
    return RayExecutor(address, env_vars=rlm.forwarded_env(), concurrency=concurrency), True


def _prepare_cluster(runner: RayExecutor, recipe: RLMRecipe) -> None:
    """Join the cluster and check every sandbox node before the first model call."""
    runner.connect()
    options = recipe.options
    runner.check_nodes(RuntimeProbe(options.get("runtime", "container"), options.get("image")))
