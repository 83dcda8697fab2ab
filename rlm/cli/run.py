"""Running a query: the run options, the checks made before anything starts, and the
result on stdout (the answer, or with --json the whole result).

Every problem found before the run is a UsageProblem (exit 2, see rlm.cli.errors); the
checks go from cheapest to dearest so the common mistakes are reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from rlm.backends import PRESETS
from rlm.cli.context import (
    check_encoding,
    context_file_problem,
    is_empty,
    load_context,
    read_text,
)
from rlm.cli.errors import ExitCode, UsageProblem, signal_exit_code
from rlm.cli.preflight import backend_for, check_recursion, check_runtime, check_writable
from rlm.cli.session import signal_name
from rlm.errors import ContextFileError

F = TypeVar("F", bound=Callable[..., Any])

QUERY_MAX_CHARS = 100_000
"""About 25,000 tokens: longer text is data, which belongs in the context."""


@dataclass(frozen=True)
class RunRequest:
    """The run options, as parsed; fields mirror the option names."""

    backend: str = "anthropic"
    model: str | None = None
    recursive_model: str | None = None
    base_url: str | None = None
    context_files: tuple[str, ...] = ()
    query: str | None = None
    query_file: str | None = None
    max_iterations: int | None = None
    max_depth: int | None = None
    max_sub_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_time: float | None = None
    runtime: str = "container"
    image: str | None = None
    warm_pool: int | None = None
    compact_prompt: bool = False
    json_output: bool = False
    trace: Path | None = None
    view: bool = False
    verbose: bool = False
    quiet: bool = False
    encoding: str = "utf-8"


RUN_OPTIONS = [
    click.option(
        "--backend",
        type=click.Choice(list(PRESETS)),
        default=RunRequest.backend,
        show_default=True,
        help="Where the model runs (a preset; its key comes from the environment).",
    ),
    click.option("--model", help="Root model (default: the preset's)."),
    click.option("--recursive-model", help="Model for llm_query sub-calls (default: --model)."),
    click.option(
        "--base-url",
        help="Endpoint URL (default: $RLM_<BACKEND>_BASE_URL, else the preset's).",
    ),
    click.option(
        "--context-file",
        "context_files",
        multiple=True,
        metavar="PATH",
        help="The data to query; repeatable. '-' reads standard input; a directory "
        "gives a list of its text files.",
    ),
    click.option("--query", help="The question to answer."),
    click.option(
        "--query-file", metavar="PATH", help="Read the question from a file ('-': stdin)."
    ),
    click.option(
        "--max-iterations", type=click.IntRange(min=1), help="Root model replies (default 10)."
    ),
    click.option(
        "--max-depth",
        type=click.IntRange(min=0),
        help="Recursion depth of llm_query (default 3; 1: plain model calls).",
    ),
    click.option(
        "--warm-pool",
        type=click.IntRange(min=0),
        metavar="N",
        help="Keep N sandboxes warming up for child runs (needs --max-depth 2 or more).",
    ),
    click.option("--max-sub-calls", type=click.IntRange(min=0), help="Budget: llm_query calls."),
    click.option("--max-tokens", type=click.IntRange(min=1), help="Budget: tokens, all calls."),
    click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD", help="Budget: cost."),
    click.option(
        "--max-time",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Budget: wall-clock time.",
    ),
    click.option(
        "--runtime",
        type=click.Choice(["container", "local"]),
        default=RunRequest.runtime,
        show_default=True,
        help="Where the code runs; 'local' has NO isolation.",
    ),
    click.option(
        "--image", help="Kernel image (default: $RLM_IMAGE, else localhost/rlm-kernel:VERSION)."
    ),
    click.option("--compact-prompt", is_flag=True, help="A shorter system prompt."),
    click.option(
        "--json", "json_output", is_flag=True, help="Print the whole result as JSON on stdout."
    ),
    click.option(
        "--trace",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Append every event of the run to this JSONL file.",
    ),
    click.option(
        "--view",
        is_flag=True,
        help="Serve the run's live view on 127.0.0.1 (its URL goes to stderr) while it "
        "runs; the trace is --trace's file, else a temporary one that is kept.",
    ),
    click.option("--verbose", "-v", is_flag=True, help="Show the code, outputs and sub-calls."),
    click.option("--quiet", "-q", is_flag=True, help="No progress; only errors on stderr."),
    click.option(
        "--encoding",
        default=RunRequest.encoding,
        show_default=True,
        help="Encoding of context and query files.",
    ),
]


def run_options(command: F) -> F:
    """Decorate `command` with every run option (the group and demo.py share them)."""
    for option in reversed(RUN_OPTIONS):
        command = option(command)
    return command


def execute(request: RunRequest, stdin: BinaryIO | None = None) -> int:
    """Run the query the request describes and print its result; returns the exit code."""
    stdin = stdin or sys.stdin.buffer
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if request.verbose and request.quiet:
        raise UsageProblem("--verbose and --quiet exclude each other")
    check_recursion(
        request.max_depth, ("--recursive-model", request.recursive_model), request.warm_pool
    )
    if request.trace is not None:
        check_writable(request.trace, "--trace")
    encoding = check_encoding(request.encoding)
    query = _query(request, encoding, stdin)
    if not request.context_files:
        raise UsageProblem("no context: give --context-file PATH (or - for standard input)")
    context = load_context(
        request.context_files, encoding=encoding, stdin=stdin, note=_noter(console, request)
    )
    if is_empty(context):
        raise UsageProblem(f"the context is empty: {', '.join(request.context_files)} hold no text")
    backend, model = backend_for(request.backend, request.model, request.base_url)
    try:
        check_runtime(request.runtime, request.image)
        if not request.view:
            return _run(request, console, backend, model, context, query)
        from rlm.cli.view import live_view

        with live_view(request.trace, lambda text: console.print(escape(text))) as trace:
            return _run(replace(request, trace=trace), console, backend, model, context, query)
    except ContextFileError as exc:
        # A large context file is checked as the run's sandbox starts (rlm.cli.context).
        raise UsageProblem(context_file_problem(exc)) from None
    finally:
        backend.close()


def _query(request: RunRequest, encoding: str, stdin: BinaryIO) -> str:
    if (request.query is None) == (request.query_file is None):
        raise UsageProblem("give the question with either --query or --query-file")
    if request.query_file is None:
        query = request.query or ""
    elif request.query_file == "-":
        if "-" in request.context_files:
            raise UsageProblem("standard input (-) can be read only once")
        query = stdin.read().decode(encoding, errors="replace")
    else:
        query = read_text(Path(request.query_file), encoding, what="query file")
    if not query.strip():
        raise UsageProblem("the query is empty")
    if len(query) > QUERY_MAX_CHARS:
        raise UsageProblem(
            f"the query is {len(query):,} characters: it goes into every prompt of the run, "
            f"so it is limited to {QUERY_MAX_CHARS:,}; give long text with --context-file"
        )
    return query.strip()


def _run(
    request: RunRequest, console: Console, backend: Any, model: str, context: Any, query: str
) -> int:
    from rlm.cli.session import logging_to, until_stopped
    from rlm.orchestrator.progress import ProgressPrinter, Tally, cost_text

    printer = None
    if not request.quiet:
        printer = ProgressPrinter(console, verbose=request.verbose, live=True)
    # Counted even when quiet: the report of a stopped run needs it.
    tally = printer.tally if printer is not None else Tally()
    sinks: list[Any] = [printer or tally]
    # --json reports the child runs too: they are only seen as events.
    tree = None
    if request.json_output:
        from rlm.viewer.model import PageSink

        tree = PageSink()
        sinks.append(tree)
    rlm = _make_rlm(request, backend, model, sinks)

    def on_signal(signum: int, first: bool) -> None:
        name = signal_name(signum)
        if first:
            console.print(f"rlm: {name}: stopping, removing sandboxes…")
        else:
            console.print(f"rlm: {name}: still removing sandboxes, please wait")

    async def main() -> Any:
        try:
            return await until_stopped(rlm.acompletion(context, query), on_signal)
        finally:
            await backend.aclose()

    level = logging.ERROR if request.quiet else logging.WARNING
    with logging_to(console, level), printer or contextlib.nullcontext():
        finished = asyncio.run(main())
    spent = rlm.cost_summary()
    spent_text = (
        f"{spent['calls']} model calls, {spent['input_tokens'] + spent['cache_read_tokens']:,} "
        f"in / {spent['output_tokens']:,} out tokens, "
        # No calls cost nothing, though the ledger reports an empty total as unknown.
        f"{cost_text(spent['cost_usd'] if spent['calls'] else 0.0)}"
    )
    if finished.result is None:
        left = tally.sandboxes
        cleanup = (
            "all sandboxes removed"
            if left == 0
            else f"{left} sandbox(es) may remain: the next run removes them"
        )
        console.print(
            f"rlm: stopped by {signal_name(finished.signum or 0)} after "
            f"{tally.elapsed:.1f} s; {cleanup}; spent {spent_text}"
        )
        return signal_exit_code(finished.signum or 0)

    result = finished.result
    if request.json_output:
        as_json = _result_json(request, model, rlm, result)
        as_json["child_runs"] = tree.child_runs() if tree else []
        click.echo(json.dumps(as_json, indent=2, default=str))
    elif result.success:
        click.echo(result.answer)
    if result.success:
        if not request.quiet and not request.verbose:
            console.print(
                f"rlm: answered in {result.stats.wall_time_s:.1f} s after "
                f"{result.stats.iterations} iteration(s), {result.stats.total_sub_calls} "
                f"sub-call(s); spent {spent_text}"
            )
            if result.finish == "unmarked":
                console.print("rlm: the answer is the model's prose: it never called FINAL")
        return ExitCode.OK
    if setup_error := backend.setup_error:
        console.print(f"rlm: error: {escape(str(setup_error))}")
        return ExitCode.USAGE
    console.print(
        f"rlm: no answer: {escape(result.error or 'unknown failure')}; spent {spent_text}"
    )
    if result.answer and not request.json_output and not request.quiet:
        console.print(f"rlm: best partial answer:\n{escape(result.answer)}")
    return ExitCode.FAILED


def _make_rlm(request: RunRequest, backend: Any, model: str, sinks: list[Any]) -> Any:
    from rlm.orchestrator import RLM

    given = {
        "max_iterations": request.max_iterations,
        "max_depth": request.max_depth,
        "warm_pool": request.warm_pool,
        "max_sub_calls": request.max_sub_calls,
        "max_tokens": request.max_tokens,
        "max_cost_usd": request.max_cost,
        "max_time_s": request.max_time,
        "image": request.image,
        "trace": request.trace,
    }
    return RLM(
        backend,
        model=model,
        recursive_model=request.recursive_model,
        compact_prompt=request.compact_prompt,
        runtime=request.runtime,
        event_sinks=sinks,
        # Unset options keep the RLM's defaults, so they are written down only there.
        **{name: value for name, value in given.items() if value is not None},
    )


def _result_json(request: RunRequest, model: str, rlm: Any, result: Any) -> dict[str, Any]:
    return {
        "success": result.success,
        "answer": result.answer,
        "error": result.error,
        "finish": result.finish,
        "backend": request.backend,
        "model": model,
        "recursive_model": rlm.recursive_model,
        "stats": {
            **asdict(result.stats),
            "total_tokens": result.stats.total_tokens,
            "total_sub_calls": result.stats.total_sub_calls,
        },
        "cost_summary": rlm.cost_summary(),
        "history": result.history,
    }


def _noter(console: Console, request: RunRequest) -> Callable[[str], None]:
    def note(text: str) -> None:
        if not request.quiet:
            console.print(f"rlm: {escape(text)}")

    return note
