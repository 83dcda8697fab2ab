"""`rlm eval`: run a benchmark against a backend, resume it, and report it.

    rlm eval --task sniah --backend openai --lengths 2^13..2^20 -n 5 --out runs/sniah.jsonl

The main `rlm` group adds `eval_command` (`python -m rlm.cli eval` without the console
script); the benchmarks themselves are the rlm.eval library. Every problem found before
a task starts is a UsageProblem (exit 2, one line).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rlm.backends import PRESETS, Backend, WatchedBackend
from rlm.batch import RLMRecipe, RuntimeProbe
from rlm.batch.ray_executor import TaskLost
from rlm.cli.errors import ExitCode, UsageProblem, signal_exit_code
from rlm.cli.executor import check_options, executor_options, make_executor
from rlm.cli.preflight import backend_for, check_recursion, check_runtime
from rlm.cli.session import logging_to, signal_name, until_stopped
from rlm.errors import BackendError
from rlm.eval import report
from rlm.eval.generators import GENERATORS
from rlm.eval.lengths import parse_length, parse_lengths
from rlm.eval.runner import Evaluation
from rlm.eval.solvers import BaselineSolver, RLMSolver, Solver, SolverRecipe
from rlm.eval.store import Record, ResultsFileError, ResultStore
from rlm.eval.tasks import plan


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--task",
    "kinds",
    multiple=True,
    type=click.Choice(list(GENERATORS)),
    help="Task type, repeatable (default: all). sniah: needle in a haystack (RULER); "
    "oolong: counts over labelled records; pairs: pairs of users (F1).",
)
@click.option(
    "--backend",
    type=click.Choice(list(PRESETS)),
    default="anthropic",
    show_default=True,
    help="Where the model runs (its key comes from the environment).",
)
@click.option("--model", help="Root model (default: the preset's).")
@click.option("--sub-model", help="Model for llm_query sub-calls (default: --model).")
@click.option(
    "--base-url", help="Endpoint URL (default: $RLM_<BACKEND>_BASE_URL, else the preset's)."
)
@click.option(
    "--lengths",
    default="2^13..2^17",
    show_default=True,
    help="Context lengths in tokens (4 characters each): 8192, 8K, 1M, 2^13, or a range "
    "of powers of two 2^13..2^20; comma-separated.",
)
@click.option(
    "-n",
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Tasks per type and length.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generators.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tasks (each with its own sandbox) running at once (default: 4; with --executor "
    "ray, every sandbox the cluster declares).",
)
@executor_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results JSONL; rerunning skips the tasks it holds. The summary (.summary.md) "
    "and plot (.png) go next to it. Default: eval-results/rlm.jsonl "
    "(eval-results/baseline.jsonl with --baseline).",
)
@click.option(
    "--traces",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep each task's trace as DIR/<task id>.jsonl, named in its record, for "
    "`rlm view RESULTS`. With --executor ray, DIR must be shared by the nodes.",
)
@click.option(
    "--runtime",
    type=click.Choice(["container", "local"]),
    default="container",
    show_default=True,
    help="Where the code runs; 'local' has NO isolation.",
)
@click.option(
    "--image", help="Kernel image (default: $RLM_IMAGE, else localhost/rlm-kernel:VERSION)."
)
@click.option(
    "--max-iterations",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Root model replies per task.",
)
@click.option(
    "--max-depth",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Recursion depth of llm_query (1: plain model calls, as in the paper).",
)
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD", help="Budget per task.")
@click.option(
    "--max-time",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Budget per task.",
)
@click.option(
    "--baseline",
    is_flag=True,
    help="Ask the plain model instead, with the context cut to --window-tokens.",
)
@click.option(
    "--window-tokens",
    default="128000",
    show_default=True,
    help="The baseline model's context window, in tokens of 4 characters (128K, 2^17 work).",
)
@click.option("--retry-errors", is_flag=True, help="Run again the tasks recorded with an error.")
def eval_command(**options: Any) -> int:
    """Evaluate on long-context benchmarks (S-NIAH, OOLONG, OOLONG-Pairs) generated
    offline from --seed, printing a summary table and plotting score and cost against
    context length. A killed run resumes where it stopped when rerun with the same --out.

    \b
    rlm eval --task sniah --backend openai --lengths 2^13..2^20
    rlm eval --task oolong --baseline --window-tokens 128K --out runs/oolong-base.jsonl
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    evaluation, backend, title = _prepare(**options)
    planned, todo = len(evaluation.specs), len(evaluation.todo)
    out = evaluation.store.path
    console.print(
        f"rlm eval: {planned} task(s), {evaluation.skipped} already in {escape(str(out))}, "
        f"running {todo}"
    )
    with logging_to(console, logging.WARNING):
        stopped_by = asyncio.run(_run(evaluation, backend, console))
    if stopped_by is not None:
        console.print(
            f"rlm eval: stopped by {signal_name(stopped_by)}; "
            f"{sum(spec.id in evaluation.done for spec in evaluation.specs)} result(s) kept in "
            f"{escape(str(out))}: rerun the same command to resume"
        )
        return signal_exit_code(stopped_by)
    records = [evaluation.done[spec.id] for spec in evaluation.specs]
    _report(records, out, title, console)
    return ExitCode.OK


def _prepare(**options: Any) -> tuple[Evaluation, WatchedBackend, str]:
    """Everything checked and built before the first task starts."""
    try:
        lengths = parse_lengths(options["lengths"])
    except ValueError as exc:
        raise UsageProblem(f"--lengths: {exc}") from None
    try:
        window_tokens = parse_length(options["window_tokens"])
    except ValueError as exc:
        raise UsageProblem(f"--window-tokens: {exc}") from None
    baseline = options["baseline"]
    if baseline and options["sub_model"]:
        raise UsageProblem("--sub-model has no use with --baseline (there are no sub-calls)")
    if baseline and options["traces"]:
        raise UsageProblem("--traces has no use with --baseline (one model call per task)")
    check_options(options["executor"], options["ray_address"])
    _check_key(options["backend"])
    if not baseline:
        check_recursion(options["max_depth"], ("--sub-model", options["sub_model"]))
    if not baseline and options["executor"] == "local":
        check_runtime(options["runtime"], options["image"])
    backend, model = backend_for(options["backend"], options["model"], options["base_url"])
    try:
        return _evaluation(backend, model, window_tokens, lengths, options)
    except BaseException:
        backend.close()
        raise


def _evaluation(
    backend: WatchedBackend,
    model: str,
    window_tokens: int,
    lengths: list[int],
    options: dict[str, Any],
) -> tuple[Evaluation, WatchedBackend, str]:
    solver: Solver
    run_info: dict[str, Any] = {"backend": options["backend"], "model": model}
    if options["baseline"]:
        solver = BaselineSolver(backend, model, window_tokens)
        run_info["window_tokens"] = window_tokens
    else:
        solver = RLMSolver(_rlm(backend, model, options))
        run_info["sub_model"] = solver.rlm.recursive_model
    run_info["seed"] = options["seed"]
    out = options["out"] or Path("eval-results", f"{solver.mode}.jsonl")
    specs = plan(options["kinds"] or GENERATORS, lengths, options["n"], options["seed"])
    env_vars: dict[str, str] = {}
    if options["executor"] == "ray":
        # Workers build their own solver from this recipe and their runtime environment.
        recipe = RLMRecipe(options["backend"], model, _rlm_options(options), options["base_url"])
        solver = SolverRecipe(recipe, window_tokens if options["baseline"] else None)
        env_vars = recipe.forwarded_env()
    try:
        evaluation = Evaluation(
            specs,
            solver,
            ResultStore(out),
            run_info=run_info,
            retry_errors=options["retry_errors"],
            setup_error=lambda: backend.setup_error,
            traces=_traces(options["traces"]),
        )
    except (ResultsFileError, OSError) as exc:
        raise UsageProblem(str(exc)) from None
    probe = None if options["baseline"] else RuntimeProbe(options["runtime"], _image(options))
    evaluation.executor = make_executor(
        options["executor"], options["ray_address"], options["concurrency"], env_vars, probe
    )
    return evaluation, backend, f"{solver.mode}: {options['backend']} / {model}"


def _traces(directory: Path | None) -> Path | None:
    """The directory, made; absolute, as workers on other nodes write to it."""
    if directory is None:
        return None
    directory = directory.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageProblem(f"--traces {directory}: {exc.strerror or exc}") from None
    return directory


def _check_key(preset: str) -> None:
    key_env = PRESETS[preset].key_env
    if PRESETS[preset].needs_key and not os.environ.get(key_env or ""):
        keyless = ", ".join(name for name, p in PRESETS.items() if not p.needs_key)
        raise UsageProblem(
            f"no endpoint configured for --backend {preset}: set {key_env} "
            f"(or choose a --backend that needs no key: {keyless})"
        )


def _rlm(backend: Backend, model: str, options: dict[str, Any]) -> Any:
    from rlm.orchestrator import RLM

    return RLM(backend, model=model, **_rlm_options(options))


def _rlm_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "recursive_model": options["sub_model"],
        "max_iterations": options["max_iterations"],
        "max_depth": options["max_depth"],
        "max_cost_usd": options["max_cost"],
        "max_time_s": options["max_time"],
        "runtime": options["runtime"],
        "image": _image(options),
    }


def _image(options: dict[str, Any]) -> str | None:
    """On a cluster every node runs the driver's choice of image, not its own default."""
    if options["executor"] == "local" or options["runtime"] == "local":
        return options["image"]
    from rlm.sandbox.provisioner import default_image

    return options["image"] or default_image()


async def _run(evaluation: Evaluation, backend: Backend, console: Console) -> int | None:
    """Run with a progress bar; returns the stop signal's number if one ended the run.
    A stop signal cancels the tasks in flight, which closes their sandboxes."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    bar = progress.add_task("tasks", total=len(evaluation.todo), status="")
    scores: list[float] = []

    def on_done(record: Record) -> None:
        scores.append(record["score"])
        errors = f", {record['id']} failed" if record["error"] else ""
        status = f"mean score {sum(scores) / len(scores):.1%}{errors}"
        progress.update(bar, advance=1, status=status)

    try:
        with progress:
            finished = await until_stopped(evaluation.run(on_done))
    except BackendError as exc:
        raise UsageProblem(f"{type(exc).__name__}: {exc}") from None
    except TaskLost as exc:
        raise click.ClickException(f"{exc}; rerun the same command to resume") from None
    finally:
        evaluation.executor.close()
        await backend.aclose()
    return finished.signum


def _report(records: list[Record], out: Path, title: str, console: Console) -> None:
    table = report.markdown(report.summarize(records), title)
    click.echo(table)
    summary = out.with_name(out.stem + ".summary.md")
    summary.write_text(table, encoding="utf-8")
    try:
        plot = report.plot(report.summarize(records), out.with_name(out.stem + ".png"), title)
    except report.PlotUnavailable as exc:
        console.print(f"rlm eval: {escape(str(exc))}")  # [eval] is not markup
        plot = None
    wrote = ", ".join(str(path) for path in (out, summary, plot) if path is not None)
    console.print(f"rlm eval: wrote {escape(wrote)}")
