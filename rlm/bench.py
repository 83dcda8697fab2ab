"""`make bench`: how fast the sandbox is, against baselines measured in the same run.

    python -m rlm.bench [--repeat N] [--out bench-results/bench.json] [--skip-container]

Prints a table of medians with ratios (ours / baseline, ours / target) and writes the same
figures as JSON. Targets and the peers' figures come from shared/BENCHMARKS.md.

Baselines, run in this process in turns with ours (A B C, A B C, ...):
- "bare ipykernel, stock": the python3 kernel spec as a local process (no container, no
  callback channel), default settings (tcp on loopback), driven by a minimal client that
  waits for the reply and the idle status as our host does.
- "bare ipykernel, tuned": the same, with the tweaks our kernel makes (RLMKernelApp: no
  shell-channel thread, no DEBUG log records; RLMShell: one input transform per cell, no
  compile to look for `await` in a cell without one; no 0.5 ms sleep per execute, no echo
  of the code, no flush of empty streams, no history database) and ipc sockets as ours, so
  that ours / tuned is what the container, our runtime and our host cost, not what the
  tweaks buy; stock / tuned is what they buy.
- start rows time a start through the first execute of `x = 1` (what a run waits for),
  not the close (a container removal, 0.1-0.7 s of the engine's); each close and any
  removal left in the background end before the next start. The bare kernels are judged
  ready as Sandbox judges ours.
- the `llm_query` round trip through a bare `Sandbox` handler is compared with its floor: a
  64-byte ping-pong over a unix socket between this process and a child Python process.
- the `llm_query` round trip through `RLM` is compared with the same loop against a bare
  `Sandbox` handler, so the ratio is what the orchestrator and a backend add.
- batched sub-calls are compared with their floor (ceil(calls / concurrency) waves of the
  model's latency), at the official runtime's concurrency of 16.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from queue import Empty

import click
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from rich.console import Console
from rich.table import Table

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.kernel_image import RUNTIME_DIR
from rlm.sandbox import LLMRequest, Sandbox, removals
from rlm.sandbox.pool import SandboxPool

# An ipykernel with our kernel's speed tweaks and nothing else of ours (no runtime, no cap).
TUNED_KERNEL = """
import sys
from ipykernel.ipkernel import IPythonKernel
from traitlets.config import Config
from rlm_kernel.app import RLMKernelApp
from rlm_kernel.caps import OutputCap
from rlm_kernel.shell import RLMShell

class TunedKernel(IPythonKernel):
    shell_class = RLMShell

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._execute_sleep = 0.0
        cap = OutputCap(sys.maxsize)  # only its skipping of empty flushes
        for stream in (sys.stdout, sys.stderr):
            cap.wrap(stream)

    def _publish_execute_input(self, code, parent, execution_count):
        pass

config = Config()
config.HistoryManager.enabled = False
RLMKernelApp.launch_instance(kernel_class=TunedKernel, config=config)
"""
ROUNDS = 10  # turns of ours and the baselines in a measure
LLM_QUERY_ROUNDS = 3
BATCH_CALLS = 320
BATCH_LATENCY_S = 0.1


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


async def _interleaved_ms(
    actions: dict[str, Callable[[], Awaitable[float]]], rounds: int, per_round: int, warmup: int
) -> dict[str, float]:
    """Median ms of each action (each returns the seconds it measured), taken in turns
    (A B C, A B C, ...) so that the load of a shared machine, which drifts, falls on ours
    and the baselines alike."""
    for action in actions.values():
        for _ in range(warmup):
            await action()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            for _ in range(per_round):
                samples[name].append(await action())
    return {name: statistics.median(times) * 1000 for name, times in samples.items()}


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


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


def _tuned_kernel(directory: Path) -> Callable[[], AsyncKernelManager]:
    """Managers of the tuned baseline: its kernel spec, over ipc sockets as ours."""
    spec_dir = directory / "tuned"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-c", TUNED_KERNEL, "-f", "{connection_file}"],
        "display_name": "tuned ipykernel",
        "language": "python",
        "env": {"PYTHONPATH": str(RUNTIME_DIR)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(directory)])
    return lambda: AsyncKernelManager(
        kernel_name="tuned", kernel_spec_manager=specs, transport="ipc", ip=str(directory / "k")
    )


def _stock_kernel() -> AsyncKernelManager:
    """The stock baseline: the python3 kernel spec, over jupyter_client's default tcp."""
    return AsyncKernelManager(kernel_name="python3")


async def _bare_kernel(
    make_manager: Callable[[], AsyncKernelManager],
) -> tuple[AsyncKernelManager, AsyncKernelClient]:
    manager = make_manager()
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    async with asyncio.timeout(60):
        await _wait_ready(client)
    return manager, client


async def _wait_ready(client: AsyncKernelClient) -> None:
    """Ready as Sandbox judges it (kernel_info answered, IOPub carrying messages), not as
    jupyter_client's wait_for_ready, which then waits for 0.2 s of IOPub silence."""
    while True:
        client.kernel_info()
        with contextlib.suppress(Empty):
            if (await client.get_shell_msg(timeout=1))["msg_type"] == "kernel_info_reply":
                await client.get_iopub_msg(timeout=0.2)
                return


async def _zero_latency(request: LLMRequest) -> str:
    return "ok"


async def _sleepy(request: LLMRequest) -> str:
    await asyncio.sleep(BATCH_LATENCY_S)
    return "ok"


def _llm_query_loop(calls: int) -> str:
    """Kernel code timing `calls` llm_query round trips; leaves their ms as JSON in `_ms`."""
    return (
        "import json, time\n"
        "for _ in range(50): llm_query('x')\n"
        "_t = []\n"
        f"for _ in range({calls}):\n"
        "    _s = time.perf_counter(); llm_query('x'); _t.append(time.perf_counter() - _s)\n"
        "_ms = json.dumps([t * 1000 for t in _t])\n"
    )


async def _llm_query_ms(box: Sandbox, calls: int) -> list[float]:
    result = await box.execute(_llm_query_loop(calls) + "print(_ms)")
    if result.error:
        raise RuntimeError(f"llm_query benchmark failed: {result.error.value}")
    return json.loads(result.stdout)


# The child end of the floor's ping-pong: echo every 64-byte message until the socket closes.
ECHO = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
while data := s.recv(64):
    s.sendall(data)
"""


def _socket_floor_ms(calls: int) -> list[float]:
    """Round trips of 64 bytes over a unix socket to another Python process, blocking on
    both sides: what a signed request and its answer cannot beat on this machine."""
    ours, theirs = socket.socketpair()
    with (
        ours,
        subprocess.Popen(
            [sys.executable, "-c", ECHO, str(theirs.fileno())], pass_fds=[theirs.fileno()]
        ) as child,
    ):
        theirs.close()
        message, times = b"x" * 64, []
        for _ in range(calls + 50):
            started = time.perf_counter()
            ours.sendall(message)
            ours.recv(64)
            times.append((time.perf_counter() - started) * 1000)
        ours.shutdown(socket.SHUT_RDWR)
        child.wait(10)
    return times[50:]


async def _rlm_llm_query_ms(runtime: str, calls: int) -> list[float]:
    """The same loop written by a root model, each llm_query a sub-call through the run's
    budget and ledger to a zero-latency backend (max_depth=1: a plain model call)."""

    def model(messages: list[Message], model: str) -> str:
        if messages[-1]["content"] == "x":
            return "ok"
        return f"```repl\n{_llm_query_loop(calls)}FINAL(str(_ms))\n```"

    rlm = RLM(ScriptedBackend(model), max_depth=1, runtime=runtime)
    result = await rlm.acompletion("x", "time llm_query")
    if not result.success:
        raise RuntimeError(f"llm_query benchmark through RLM failed: {result.error}")
    return json.loads(result.answer)


async def _bare_start(make_manager: Callable[[], AsyncKernelManager]) -> float:
    """Seconds from nothing to the first execute's end; the shutdown is not timed."""
    started = time.perf_counter()
    manager, client = await _bare_kernel(make_manager)
    await _bare_execute(client, "x = 1")
    elapsed = time.perf_counter() - started
    client.stop_channels()
    await manager.shutdown_kernel(now=True)
    return elapsed


async def _sandbox_start(runtime: str, context: str) -> float:
    """Seconds from nothing to the first execute's end. The close, whose container removal
    takes the engine 0.1-0.7 s, is not timed, but ends before the next start, as does
    any removal still running in the background: neither competes with a timed start."""
    started = time.perf_counter()
    box = await Sandbox(context, runtime=runtime).start()
    await box.execute("x = 1")
    elapsed = time.perf_counter() - started
    await box.close()
    await removals.drain()
    return elapsed


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


async def _batched_ms(runtime: str, concurrency: int) -> float:
    async with Sandbox(
        "x", runtime=runtime, llm_handler=_sleepy, batch_concurrency=concurrency
    ) as box:
        result = await box.execute(
            "import time\n_s = time.perf_counter()\n"
            f"llm_query_batched(['p'] * {BATCH_CALLS})\n"
            "print((time.perf_counter() - _s) * 1000)"
        )
    if result.error:
        raise RuntimeError(f"batched benchmark failed: {result.error.value}")
    return float(result.stdout)


async def run_benchmarks(repeat: int, with_container: bool, console: Console) -> list[Measure]:
    measures: list[Measure] = []
    runtimes = ["container", "local"] if with_container else ["local"]

    stack = contextlib.AsyncExitStack()
    async with stack:
        tuned_kernel = _tuned_kernel(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        console.print("[dim]warm execute, ours and both baselines in turns...[/dim]")
        executes: dict[str, Callable[[], Awaitable[float]]] = {}
        for name, make_manager in (("stock", _stock_kernel), ("tuned", tuned_kernel)):
            manager, client = await _bare_kernel(make_manager)
            stack.callback(client.stop_channels)
            stack.push_async_callback(manager.shutdown_kernel, now=True)
            executes[name] = partial(_timed, partial(_bare_execute, client, "x = 1"))
        boxes: dict[str, Sandbox] = {}
        for runtime in runtimes:
            box = Sandbox("x", runtime=runtime, llm_handler=_zero_latency)
            boxes[runtime] = await stack.enter_async_context(box)
            executes[runtime] = partial(_timed, partial(box.execute, "x = 1"))
        warm = await _interleaved_ms(executes, ROUNDS, max(1, repeat // ROUNDS), repeat // 10)

        console.print("[dim]llm_query round trips, Sandbox and RLM in turns...[/dim]")
        calls = max(200, repeat * 4)
        round_trips: dict[str, list[float]] = defaultdict(list)
        for _ in range(LLM_QUERY_ROUNDS):
            round_trips["floor"] += _socket_floor_ms(calls)
            for runtime in runtimes:
                # The engine's removal of the last run's container, on a worker thread, would
                # otherwise share the two cores with the next turn's round trips.
                await removals.drain()
                round_trips[f"box {runtime}"] += await _llm_query_ms(boxes[runtime], calls)
                round_trips[f"rlm {runtime}"] += await _rlm_llm_query_ms(runtime, calls)

        console.print("[dim]start to first execute, ours and both baselines in turns...[/dim]")
        await removals.drain()  # the runs above may have left removals in the background
        starts: dict[str, Callable[[], Awaitable[float]]] = {
            "stock": partial(_bare_start, _stock_kernel),
            "tuned": partial(_bare_start, tuned_kernel),
        }
        for runtime in runtimes:
            starts[runtime] = partial(_sandbox_start, runtime, "x")
        start_rounds = max(10, repeat // 20)  # a median of three or four starts drifts by 0.1 s
        ready = await _interleaved_ms(starts, start_rounds, 1, 1)
    round_trip = {name: statistics.median(times) for name, times in round_trips.items()}

    tuned_name = "bare ipykernel, tuned as ours, local process"
    tuned_start = "tuned bare ipykernel start, local process"
    measures.append(
        Measure(
            "warm execute `x = 1`, bare ipykernel, stock settings (local process)",
            "ms",
            warm["stock"],
            repeat,
            warm["tuned"],
            tuned_name,
        )
    )
    measures.append(
        Measure(
            "start to first execute, bare ipykernel, stock settings (local process)",
            "ms",
            ready["stock"],
            start_rounds,
            ready["tuned"],
            tuned_start,
        )
    )
    for runtime in runtimes:
        measures += [
            Measure(
                f"warm execute `x = 1` ({runtime})",
                "ms",
                warm[runtime],
                repeat,
                warm["tuned"],
                tuned_name,
                1.0,
            ),
            Measure(
                f"llm_query round trip, Sandbox with a zero-latency handler ({runtime})",
                "ms",
                round_trip[f"box {runtime}"],
                calls * LLM_QUERY_ROUNDS,
                round_trip["floor"],
                "floor: a unix socket ping-pong between two Python processes",
                0.12,
            ),
            Measure(
                f"llm_query round trip through RLM and a zero-latency backend ({runtime})",
                "ms",
                round_trip[f"rlm {runtime}"],
                calls * LLM_QUERY_ROUNDS,
                round_trip[f"box {runtime}"],
                "the Sandbox round trip above",
                0.12,
            ),
            Measure(
                f"start to first execute, tiny context ({runtime})",
                "ms",
                ready[runtime],
                start_rounds,
                ready["tuned"],
                tuned_start,
                350.0,
            ),
        ]

    main = runtimes[0]
    for concurrency, label in ((16, "the official runtime's setting"), (32, "extra, ours only")):
        console.print(f"[dim]{main}: batched sub-calls at concurrency {concurrency}...[/dim]")
        floor_ms = math.ceil(BATCH_CALLS / concurrency) * BATCH_LATENCY_S * 1000
        measures.append(
            Measure(
                f"{BATCH_CALLS} sub-calls, 100 ms model, batched, concurrency {concurrency} "
                f"({label}) ({main})",
                "ms",
                await _batched_ms(main, concurrency),
                1,
                floor_ms,
                f"floor: {math.ceil(BATCH_CALLS / concurrency)} waves of 100 ms",
                floor_ms * 1.02,
            )
        )

    console.print(f"[dim]{main}: sandboxes from a warm pool...[/dim]")
    measures.append(
        Measure(
            f"start to ready from a warm pool, tiny context loaded ({main})",
            "ms",
            await _pooled_start_ms(main, 5),
            5,
            target=50.0,
        )
    )

    if with_container:
        # Imported here: rlm.bench_pool builds on this module's Measure.
        from rlm.bench_pool import pool_benchmarks

        measures += await pool_benchmarks(console)
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
