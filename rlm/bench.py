"""`make bench`: how fast the sandbox is, against a bare ipykernel measured in the same run.

    python -m rlm.bench [--repeat N] [--out bench-results/bench.json] [--skip-container]

Prints a table of medians with ratios (ours / baseline, ours / target) and writes the same
figures as JSON. Targets and the peers' figures come from shared/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import click
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from rich.console import Console
from rich.table import Table

from rlm.sandbox import LLMRequest, Sandbox
from rlm.sandbox.pool import SandboxPool


@dataclass
class Measure:
    name: str
    unit: str
    median: float
    samples: int
    baseline: float | None = None
    baseline_name: str = ""
    target: float | None = None

    @property
    def vs_baseline(self) -> float | None:
        return self.median / self.baseline if self.baseline else None

    @property
    def vs_target(self) -> float | None:
        return self.median / self.target if self.target else None


async def _median_ms(action: Callable[[], Awaitable[object]], repeat: int) -> float:
    for _ in range(max(3, repeat // 10)):  # warm up
        await action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _bare_execute(client: AsyncKernelClient, code: str) -> None:
    """Drive a plain ipykernel the way Sandbox drives ours: reply plus idle status."""
    msg_id = client.execute(code, silent=False, store_history=False, stop_on_error=False)
    while True:
        msg = await client.get_iopub_msg(timeout=30)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    while (await client.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
        pass


async def _bare_kernel() -> tuple[AsyncKernelManager, AsyncKernelClient, float]:
    started = time.perf_counter()
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return manager, client, time.perf_counter() - started


async def _zero_latency(request: LLMRequest) -> str:
    return "ok"


async def _sleepy(request: LLMRequest) -> str:
    await asyncio.sleep(0.1)
    return "ok"


async def _llm_query_ms(box: Sandbox, calls: int) -> float:
    result = await box.execute(
        "import time, statistics\n"
        "for _ in range(50): llm_query('x')\n"
        "_t = []\n"
        f"for _ in range({calls}):\n"
        "    _s = time.perf_counter(); llm_query('x'); _t.append(time.perf_counter() - _s)\n"
        "print(statistics.median(_t) * 1000)"
    )
    if result.error:
        raise RuntimeError(f"llm_query benchmark failed: {result.error.value}")
    return float(result.stdout)


async def _start_ms(runtime: str, context: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        box = await Sandbox(context, runtime=runtime).start()
        times.append(time.perf_counter() - started)
        await box.close()
    return statistics.median(times) * 1000


async def _pooled_start_ms(runtime: str, repeat: int) -> float:
    times = []
    async with SandboxPool(1, runtime=runtime) as pool:
        for _ in range(repeat):
            async with asyncio.timeout(120):
                while not pool.ready:
                    await asyncio.sleep(0.05)
            started = time.perf_counter()
            box = await pool.acquire("a short context", _zero_latency)
            times.append(time.perf_counter() - started)
            await box.close()
    return statistics.median(times) * 1000


async def run_benchmarks(repeat: int, with_container: bool, console: Console) -> list[Measure]:
    measures: list[Measure] = []
    runtimes = ["container", "local"] if with_container else ["local"]

    console.print("[dim]bare ipykernel baseline...[/dim]")
    manager, client, bare_start = await _bare_kernel()
    try:
        bare_exec = await _median_ms(lambda: _bare_execute(client, "x = 1"), repeat)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    bare_starts = [bare_start]
    for _ in range(2):
        manager, client, seconds = await _bare_kernel()
        bare_starts.append(seconds)
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    bare_start_ms = statistics.median(bare_starts) * 1000

    for runtime in runtimes:
        console.print(f"[dim]{runtime} sandbox...[/dim]")
        async with Sandbox("x", runtime=runtime, llm_handler=_zero_latency) as box:
            measures.append(
                Measure(
                    f"warm execute `x = 1` ({runtime})",
                    "ms",
                    await _median_ms(lambda box=box: box.execute("x = 1"), repeat),
                    repeat,
                    bare_exec,
                    "bare ipykernel, same driver",
                    2.0,
                )
            )
            calls = max(200, repeat * 4)
            measures.append(
                Measure(
                    f"llm_query round trip, zero-latency handler ({runtime})",
                    "ms",
                    await _llm_query_ms(box, calls),
                    calls,
                    target=0.25,
                )
            )
        starts = max(3, repeat // 50)
        measures.append(
            Measure(
                f"start to ready ({runtime})",
                "ms",
                await _start_ms(runtime, "x", starts),
                starts,
                bare_start_ms,
                "bare ipykernel start",
                1000.0,
            )
        )

    main = runtimes[0]
    console.print(f"[dim]{main}: 320 sub-calls of a 100 ms model, batched...[/dim]")
    async with Sandbox("x", runtime=main, llm_handler=_sleepy, batch_concurrency=32) as box:
        result = await box.execute(
            "import time\n_s = time.perf_counter()\n"
            "llm_query_batched(['p'] * 320)\nprint((time.perf_counter() - _s) * 1000)"
        )
        measures.append(
            Measure(
                f"320 sub-calls, 100 ms model, concurrency 32 ({main})",
                "ms",
                float(result.stdout),
                1,
                target=1100.0,
            )
        )

    console.print(f"[dim]{main}: sandboxes from a warm pool...[/dim]")
    measures.append(
        Measure(
            f"start to ready from a warm pool, with its context ({main})",
            "ms",
            await _pooled_start_ms(main, 5),
            5,
            target=50.0,
        )
    )

    console.print(f"[dim]{main}: 100 MB context...[/dim]")
    big = "The quick brown fox jumps over the lazy dog. " * 2_300_000
    empty_ms = await _start_ms(main, "x", 3)
    big_ms = await _start_ms(main, big, 3)
    measures.append(
        Measure(
            f"100 MB context ready, beyond an empty start ({main})",
            "ms",
            big_ms - empty_ms,
            3,
            target=300.0,
        )
    )
    return measures


def _render(measures: list[Measure], console: Console) -> None:
    table = Table(title="rlm sandbox benchmarks (medians)")
    for column in ("measure", "ours", "baseline", "ours/baseline", "target", "ours/target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for m in measures:
        table.add_row(
            m.name,
            f"{m.median:.3f} {m.unit}",
            f"{m.baseline:.3f} {m.unit} ({m.baseline_name})" if m.baseline else "-",
            f"{m.vs_baseline:.2f}x" if m.vs_baseline else "-",
            f"{m.target:g} {m.unit}" if m.target else "-",
            f"{m.vs_target:.2f}x" if m.vs_target else "-",
        )
    console.print(table)


@click.command()
@click.option("--repeat", default=300, show_default=True, help="Samples per round-trip measure.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results/bench.json"),
    show_default=True,
)
@click.option("--skip-container", is_flag=True, help="Only the local runtime (no engine needed).")
def main(repeat: int, out: Path, skip_container: bool) -> None:
    """Measure the sandbox against a bare ipykernel and print medians and ratios."""
    console = Console(stderr=True)
    measures = asyncio.run(run_benchmarks(repeat, not skip_container, console))
    _render(measures, Console(width=160))
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "measures": [
            {**asdict(m), "vs_baseline": m.vs_baseline, "vs_target": m.vs_target} for m in measures
        ],
    }
    out.write_text(json.dumps(record, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
