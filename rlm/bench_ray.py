"""`make bench-ray`: what running batch work on Ray costs and buys, on this machine.

    python -m rlm.bench_ray [--tasks N] [--nap SECONDS] [--out bench-results/bench-ray.json]

Starts a loopback Ray cluster (rlm.batch.loopback) and measures, in the same run:
- overhead per task: wall time per task of an empty job, local executor vs Ray (one node),
  all tasks submitted at once with the same concurrency;
- throughput: tasks/second of a job that waits `nap` seconds (a task waiting on its model,
  as RLM tasks mostly do) with the local executor, and on Ray at one node and at two, each
  node declaring SANDBOXES (the local executor runs as many at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rlm.batch.executor import Executor, LocalExecutor

SANDBOXES = 4
"""Per node, and the local executor's concurrency."""


@dataclass(frozen=True)
class Nap:
    """A job that only waits: scheduling cost with no work, or a task waiting on a model."""

    seconds: float = 0.0

    async def __call__(self, item: int) -> int:
        await asyncio.sleep(self.seconds)
        return item


@dataclass
class Figures:
    local_ms_per_task: float
    ray_ms_per_task: float
    nap_s: float
    tasks_per_s_local: float
    tasks_per_s_1_node: float
    tasks_per_s_2_nodes: float
    tasks: int
    sandboxes_per_node: int

    @property
    def overhead_ratio(self) -> float:
        return self.ray_ms_per_task / self.local_ms_per_task


async def _seconds(executor: Executor, job: Nap, tasks: int) -> float:
    # One warm-up task first: Ray starts its workers on first use.
    [_ async for _ in executor.stream(job, [0])]
    started = time.perf_counter()
    async for _ in executor.stream(job, list(range(tasks))):
        pass
    return time.perf_counter() - started


def _on_ray(address: str, job: Nap, tasks: int) -> float:
    from rlm.batch.ray_executor import RayExecutor

    executor = RayExecutor(address)
    try:
        executor.connect()
        return asyncio.run(_seconds(executor, job, tasks))
    finally:
        executor.close()


def measure(tasks: int, nap: float) -> Figures:
    from rlm.batch.loopback import LoopbackCluster

    local = asyncio.run(_seconds(LocalExecutor(SANDBOXES), Nap(), tasks))
    local_naps = asyncio.run(_seconds(LocalExecutor(SANDBOXES), Nap(nap), tasks))
    with LoopbackCluster.start(sandboxes=SANDBOXES) as cluster:
        # This process is a driver too: nothing of Ray's may leave the machine.
        os.environ.update({k: v for k, v in cluster.env.items() if k != "HOME"})
        empty = _on_ray(cluster.address, Nap(), tasks)
        one_node = _on_ray(cluster.address, Nap(nap), tasks)
        cluster.add_node(sandboxes=SANDBOXES)
        two_nodes = _on_ray(cluster.address, Nap(nap), tasks)
    return Figures(
        local_ms_per_task=local / tasks * 1000,
        ray_ms_per_task=empty / tasks * 1000,
        nap_s=nap,
        tasks_per_s_local=tasks / local_naps,
        tasks_per_s_1_node=tasks / one_node,
        tasks_per_s_2_nodes=tasks / two_nodes,
        tasks=tasks,
        sandboxes_per_node=SANDBOXES,
    )


def _table(figures: Figures) -> Table:
    table = Table(title=f"rlm on Ray ({figures.tasks} tasks, {SANDBOXES} sandboxes per node)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("overhead per task, local executor", f"{figures.local_ms_per_task:.2f} ms")
    table.add_row("overhead per task, Ray (1 node)", f"{figures.ray_ms_per_task:.2f} ms")
    table.add_row("Ray / local", f"{figures.overhead_ratio:.0f}x")
    ideal = SANDBOXES / figures.nap_s
    table.add_row(
        f"tasks/s, {figures.nap_s:g} s tasks, local executor (ideal {ideal:g})",
        f"{figures.tasks_per_s_local:.2f}",
    )
    table.add_row(
        f"tasks/s, {figures.nap_s:g} s tasks, 1 node (ideal {ideal:g})",
        f"{figures.tasks_per_s_1_node:.2f}",
    )
    table.add_row(
        f"tasks/s, {figures.nap_s:g} s tasks, 2 nodes (ideal {2 * ideal:g})",
        f"{figures.tasks_per_s_2_nodes:.2f}",
    )
    return table


@click.command()
@click.option("--tasks", default=64, show_default=True, help="Tasks per measure.")
@click.option("--nap", default=0.5, show_default=True, help="Seconds each throughput task waits.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results/bench-ray.json"),
    show_default=True,
)
def main(tasks: int, nap: float, out: Path) -> None:
    """Ray executor against the local one, and its throughput at one and two nodes."""
    console = Console()
    figures = measure(tasks, nap)
    console.print(_table(figures))
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        **asdict(figures),
        "overhead_ratio": figures.overhead_ratio,
    }
    out.write_text(json.dumps(record, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
