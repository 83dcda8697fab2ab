"""`rlm view`: a run's trace as one HTML page, or served live while the run writes it;
and `live_view`, the same live page served during `rlm --view`."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from rlm.cli.errors import ExitCode, UsageProblem


@click.command("view")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default: TRACE with the suffix .html).",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--serve",
    is_flag=True,
    help="Serve the page on 127.0.0.1, following the trace while a run writes it.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port for --serve (default: any free port).",
)
def view(trace: Path, output: Path | None, open_page: bool, serve: bool, port: int) -> int:
    """Show a run's JSONL trace (rlm --trace FILE) as a self-contained web page.

    TRACE may also be an `rlm eval` results file: a table of its tasks, linked to the
    pages of the traces its records name.

    \b
    rlm view run.jsonl --open          # writes run.html and opens it
    rlm view --serve run.jsonl         # live, while `rlm --trace run.jsonl ...` runs
    """
    if serve:
        if output is not None:
            raise UsageProblem("--serve and --output exclude each other")
        return _serve(trace, port, open_page)
    from rlm.viewer.model import NotATrace, read_trace
    from rlm.viewer.render import render_html
    from rlm.viewer.results import link_traces, looks_like_results, read_results

    if not trace.is_file():
        raise UsageProblem(f"{trace}: no such file")
    output = output or trace.with_suffix(".html")
    if output.resolve() == trace.resolve():
        raise UsageProblem(f"{output} is the file to read: give another with -o")
    try:
        if looks_like_results(trace):
            page: Any = read_results(trace)
            linked = link_traces(page, trace, output)
            summary = f"{len(page.tasks)} task(s), {linked} trace page(s)"
        else:
            page = read_trace(trace)
            summary = f"{len(page.runs)} run(s), {page.events} events"
        output.write_text(render_html(page.to_json()), encoding="utf-8")
    except NotATrace as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise UsageProblem(f"{exc.filename or output}: {exc.strerror or exc}") from None
    if page.damage:
        summary += f" (the file is damaged: stopped at line {page.damage['line']})"
    click.echo(f"rlm: wrote {output}: {summary}", err=True)
    if open_page:
        webbrowser.open(output.resolve().as_uri())
    return ExitCode.OK


def _serve(trace: Path, port: int, open_page: bool) -> int:
    from rlm.viewer.results import looks_like_results
    from rlm.viewer.serve import LiveTrace, TraceServer

    if looks_like_results(trace):
        raise UsageProblem(f"{trace} holds eval results; show them with: rlm view {trace}")
    live = LiveTrace(trace)
    live.refresh()
    if live.not_a_trace:
        raise UsageProblem(f"{trace}: {live.not_a_trace}")
    try:
        server = TraceServer(live, port)
    except OSError as exc:
        raise UsageProblem(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    waiting = "" if trace.exists() else " (waiting for the file to appear)"
    click.echo(f"rlm: serving {trace}{waiting} at {server.url} (Ctrl-C stops)", err=True)
    if open_page:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the server is meant to stop
    finally:
        # Event streams end with `stopping`; their threads are daemons besides.
        server.stopping.set()
        server.server_close()
    click.echo("rlm: stopped", err=True)
    return ExitCode.OK


@contextlib.contextmanager
def live_view(trace: Path | None, say: Callable[[str], None]) -> Iterator[Path]:
    """Serve the live page of `trace` on 127.0.0.1 while the block runs (the block writes
    the trace: it gets its path). Without `trace`, a temporary file is made, and kept."""
    from rlm.viewer.serve import LiveTrace, TraceServer

    made = trace is None
    if trace is None:
        handle, name = tempfile.mkstemp(prefix="rlm-trace-", suffix=".jsonl")
        os.close(handle)
        trace = Path(name)
    live = LiveTrace(trace)
    live.refresh()
    if live.not_a_trace:  # the run would append its events to something else
        raise UsageProblem(f"--trace {trace}: {live.not_a_trace}")
    try:
        server = TraceServer(live)
    except OSError as exc:
        raise UsageProblem(f"--view: cannot serve on 127.0.0.1: {exc.strerror or exc}") from None
    thread = threading.Thread(target=server.serve_forever, name="rlm-view", daemon=True)
    thread.start()
    say(f"rlm: live view of {trace} at {server.url}")
    try:
        yield trace
    finally:
        server.stop()
        thread.join(timeout=10)
        if made:
            say(f"rlm: the trace is kept in {trace}")
