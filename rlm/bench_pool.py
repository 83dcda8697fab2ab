"""`make bench` rows for the warm pool, density and big contexts (containers only).

    python -m rlm.bench_pool [--density 10,40,100] [--skip-gib]

Each "before" is the old behaviour rebuilt from today's parts and taken in turns with
the "after" in the same run (A B A B), so a shared machine's drifting load falls on both
sides of each ratio. rlm.bench adds these rows to its own table.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import click
from rich.console import Console

from rlm.bench import Measure, _render
from rlm.cli.context import load_context, read_text
from rlm.sandbox import ContextFile, LLMRequest, Sandbox, removals
from rlm.sandbox.engine import get_engine
from rlm.sandbox.pool import SandboxPool

MiB = 1024 * 1024
TEN_MB = "The quick brown fox jumps over the lazy dog. " * (10_000_000 // 45)


async def _answer(request: LLMRequest) -> str:
    return "ok"


async def _ready(pool: SandboxPool, count: int) -> None:
    async with asyncio.timeout(300):
        while pool.ready < count:
            await asyncio.sleep(0.02)


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


async def warm_acquire(rounds: int) -> list[Measure]:
    """A pooled sandbox taking a real 10 MB context, against a cold start with it."""
    warm: list[float] = []
    cold: list[float] = []
    async with SandboxPool(1) as pool:
        for _ in range(rounds):
            await _ready(pool, 1)
            await removals.drain()  # the steady state: no removal of the last round running
            started = time.perf_counter()
            box = await pool.acquire(TEN_MB, _answer)
            warm.append((time.perf_counter() - started) * 1000)
            await pool.release(box)
            started = time.perf_counter()
            box = await Sandbox(TEN_MB, llm_handler=_answer).start()
            cold.append((time.perf_counter() - started) * 1000)
            await box.close(background=True)
    return [
        Measure(
            "warm-pool acquire with a 10 MB context (container)",
            "ms",
            _median(warm),
            rounds,
            _median(cold),
            "cold start with the same context",
            25.0,
        )
    ]


async def child_answer(rounds: int) -> list[Measure]:
    """What a child run served from the pool costs its parent's llm_query: take a warm
    sandbox, run its FINAL, give it back. Before: the removal on the answer path."""
    after: list[float] = []
    before: list[float] = []
    async with SandboxPool(2) as pool:
        for _ in range(rounds):
            for samples, background in ((after, True), (before, False)):
                await _ready(pool, 1)
                started = time.perf_counter()
                box = await pool.acquire("the sub-prompt", _answer)
                await box.execute("FINAL('ok')")
                await box.close(background=background)
                samples.append((time.perf_counter() - started) * 1000)
    return [
        Measure(
            "child run with a warm pool: acquire, FINAL, release (container)",
            "ms",
            _median(after),
            rounds,
            _median(before),
            "before: removal on the answer path",
        )
    ]


async def pool_close(rounds: int, size: int = 4) -> list[Measure]:
    """Closing a pool with `size` ready sandboxes; before: removing them in the foreground."""
    after: list[float] = []
    before: list[float] = []
    for _ in range(rounds):
        async with SandboxPool(size) as pool:
            await _ready(pool, size)
            after.append(await _timed(pool.close))
        boxes = await asyncio.gather(
            *(Sandbox("", llm_handler=_answer).start() for _ in range(size))
        )
        before.append(await _timed(partial(_close_all, boxes)))
        await removals.drain()
    return [
        Measure(
            f"closing a pool of {size} ready sandboxes (container)",
            "ms",
            _median(after),
            rounds,
            _median(before),
            "before: removed in the foreground, in turn",
        )
    ]


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (the image's libraries) split among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(child) for child in f.read().split()]
    except OSError:
        children = []
    return [pid] + [p for child in children for p in _tree(child)]


def _sandbox_bytes(box: Sandbox) -> int:
    """Host RAM of one sandbox: its container's processes and the engine's monitor (conmon),
    found through the engine's record of the container's first process."""
    pid = get_engine().client.containers.get(box.container_id).attrs["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        monitor = int(f.read().rsplit(")", 1)[1].split()[1])
    return _pss_bytes(monitor) + sum(_pss_bytes(p) for p in _tree(pid))


async def density(count: int) -> list[Measure]:
    """`count` sandboxes started at once: time until all answer, host RAM each (their
    processes' and what our process grew by), failures."""
    ours = _pss_bytes(os.getpid())
    started = time.perf_counter()
    boxes = [Sandbox("x", llm_handler=_answer) for _ in range(count)]
    results = await asyncio.gather(*(box.start() for box in boxes), return_exceptions=True)
    ready_ms = (time.perf_counter() - started) * 1000
    alive = [box for box, result in zip(boxes, results, strict=True) if result is box]
    outputs = await asyncio.gather(*(box.execute("print(1)") for box in alive))
    answered = sum(out.stdout == "1\n" for out in outputs)
    held = await asyncio.to_thread(lambda: sum(_sandbox_bytes(box) for box in alive))
    per_box = (held + _pss_bytes(os.getpid()) - ours) / max(answered, 1) / MiB
    failures = count - answered
    errors = {repr(r)[:120] for r in results if isinstance(r, BaseException)}
    await asyncio.gather(*(box.close(background=True) for box in boxes))
    await removals.drain(timeout=600)
    suffix = f", {failures} failed: {'; '.join(sorted(errors))}" if failures else ""
    return [
        Measure(f"{count} sandboxes at once: all ready (container{suffix})", "ms", ready_ms, 1),
        Measure(
            f"{count} sandboxes at once: host RAM each (PSS of kernel, conmon, host share)",
            "MiB",
            per_box,
            1,
            target=40.0,
        ),
    ]


async def hundred_mb(rounds: int) -> list[Measure]:
    """Start to ready with 100 MB of context, beyond an empty start, taken in turns: as a
    str (written to a file the kernel maps) and as a checked file (mounted, no write)."""
    text = "The quick brown fox jumps over the lazy dog. " * 2_300_000
    samples: dict[str, list[float]] = {"empty": [], "str": [], "file": []}
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        path = Path(tmp) / "hundred.txt"
        path.write_text(text)
        path.chmod(0o644)
        contexts = {"empty": "x", "str": text, "file": ContextFile.check(path)}
        for _ in range(rounds):
            for name, context in contexts.items():
                await removals.drain()  # no removal of the last start competing with this one
                started = time.perf_counter()
                box = await Sandbox(context).start()
                samples[name].append((time.perf_counter() - started) * 1000)
                await box.close(background=True)
        await removals.drain()
    # Paired: each round's own empty start is subtracted, so a slow moment of the machine
    # falls on both sides (a difference of two medians came out negative here).
    return [
        Measure(
            f"100 MB {kind} ready, beyond an empty start of the same round (container)",
            "ms",
            _median([a - b for a, b in zip(samples[name], samples["empty"], strict=True)]),
            rounds,
            target=100.0,
        )
        for name, kind in (("str", "str context"), ("file", "context file"))
    ]


async def gib_context(rounds: int) -> list[Measure]:
    """A 1 GiB context file, from the CLI's reading to a kernel answering with it.
    Before: read and decoded on the host, then written to a copy for the kernel."""
    after: list[float] = []
    before: list[float] = []
    line = "The quick brown fox jumps over the lazy dog. " * 20 + "\n"
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        path = Path(tmp) / "gib.txt"
        with path.open("w") as f:
            for _ in range(1024**3 // len(line)):
                f.write(line)

        async def ready(as_file: bool) -> None:
            # Today the CLI passes one plain UTF-8 file on as a ContextFile; it used to
            # read and decode it, and the sandbox wrote the str to a file for the kernel.
            context = (
                load_context([str(path)], encoding="utf-8", stdin=io.BytesIO(), note=print)
                if as_file
                else read_text(path, "utf-8", what="context file")
            )
            box = await Sandbox(context).start()
            try:
                result = await box.execute("print(len(CONTEXT))")
                if not result.stdout.strip().isdigit():
                    raise RuntimeError(f"the 1 GiB context did not load: {result}")
            finally:
                await box.close(background=True)

        for _ in range(rounds):
            after.append(await _timed(lambda: ready(True)))
            before.append(await _timed(lambda: ready(False)))
    await removals.drain()
    return [
        Measure(
            "1 GiB context file ready: checked and mounted, no copy (container)",
            "ms",
            _median(after),
            rounds,
            _median(before),
            "before: decoded and copied",
        )
    ]


async def _close_all(boxes: list[Sandbox]) -> None:
    # One after another: concurrent forced removals are what deadlocked Podman 4.3 here.
    for box in boxes:
        await box.close()


async def pool_benchmarks(
    console: Console,
    *,
    rounds: int = 5,
    density_counts: tuple[int, ...] = (10, 40, 100),
    gib: bool = True,
) -> list[Measure]:
    measures: list[Measure] = []
    console.print("[dim]container: warm-pool acquire with 10 MB...[/dim]")
    measures += await warm_acquire(rounds)
    console.print("[dim]container: child runs from a warm pool...[/dim]")
    measures += await child_answer(rounds)
    console.print("[dim]container: closing a pool...[/dim]")
    measures += await pool_close(max(3, rounds // 2))
    for count in density_counts:
        console.print(f"[dim]container: {count} sandboxes at once...[/dim]")
        measures += await density(count)
    console.print("[dim]container: 100 MB context, as a str and as a file...[/dim]")
    # Each sample is a difference of two starts (each ±50 ms here): five drew medians
    # 40 ms apart in two runs of the same code.
    measures += await hundred_mb(max(10, rounds))
    if gib:
        console.print("[dim]container: 1 GiB context file...[/dim]")
        measures += await gib_context(2)
    return measures


@click.command()
@click.option("--rounds", default=5, show_default=True, help="Samples per pool measure.")
@click.option("--density", "density_counts", default="10,40,100", show_default=True)
@click.option("--skip-gib", is_flag=True, help="Leave out the 1 GiB context file.")
def main(rounds: int, density_counts: str, skip_gib: bool) -> None:
    """The warm pool, density and 1 GiB rows alone."""
    counts = tuple(int(c) for c in density_counts.split(",") if c)
    console = Console(stderr=True)
    measures = asyncio.run(
        pool_benchmarks(console, rounds=rounds, density_counts=counts, gib=not skip_gib)
    )
    _render(measures, Console(width=160))


if __name__ == "__main__":
    main()
