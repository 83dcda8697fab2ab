"""Progress of a completion on a console, rendered with rich from its events: the one
renderer of the event stream, for `verbose=True` and for the `rlm` command.

`Tally` counts what the whole run tree has done (sandboxes open, sub-calls running and
done, tokens, cost). `ProgressPrinter` renders the events as they arrive, either in full
(every run, children indented by depth, with code and outputs; sub-calls are counted
rather than listed, as a batched query can make hundreds) or as one plain line per step
of the root loop, readable in a log or a pipe. With `live`, on a terminal, a status sits
below the lines: spinner, iteration, what the code is doing, sub-calls, sandboxes,
tokens, cost and elapsed time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from rlm.orchestrator.events import Event

SHOWN_CHARS = 600
HEARTBEAT_S = 10.0
"""Without a live status, the longest silence before a line saying what is going on."""


@dataclass
class Tally:
    """An EventSink counting what the whole run tree has done so far."""

    started: float = field(default_factory=time.monotonic)
    sandboxes: int = 0
    sub_calls_running: int = 0
    sub_calls_done: int = 0
    sub_calls_failed: int = 0
    sub_calls_of_run: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def emit(self, event: Event) -> None:
        f = event.fields
        if event.type == "sandbox_open":
            self.sandboxes += 1
        elif event.type == "sandbox_close":
            # Sent once the sandbox is really released: what the interrupt report trusts.
            self.sandboxes -= 1
        elif event.type == "model_response":
            self._add_usage(f["input_tokens"] + f["cache_read_tokens"], f["output_tokens"],
                            f["cost_usd"])  # fmt: skip
        elif event.type == "sub_call_start":
            self.sub_calls_running += 1
        elif event.type == "sub_call":
            self.sub_calls_running -= 1
            self.sub_calls_done += 1
            self.sub_calls_failed += f["error"] is not None
            self.sub_calls_of_run[event.run_id] = self.sub_calls_of_run.get(event.run_id, 0) + 1
            if f["usage"] is not None:
                usage = f["usage"]
                self._add_usage(
                    usage["input_tokens"] + usage["cache_read_tokens"],
                    usage["output_tokens"],
                    usage["cost_usd"],
                )

    def _add_usage(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if cost is None:
            self.cost_known = False
        else:
            self.cost += cost

    def spending(self) -> str:
        return (
            f"{self.input_tokens:,} in / {self.output_tokens:,} out tokens, "
            f"{cost_text(self.cost if self.cost_known else None)}"
        )

    def sub_calls(self) -> str:
        failed = f", {self.sub_calls_failed} failed" if self.sub_calls_failed else ""
        return f"sub-calls {self.sub_calls_done} done{failed}, {self.sub_calls_running} running"

    def total_cost(self) -> str:
        return f"${self.cost:.4f}" + ("" if self.cost_known else " + unknown")


def cost_text(cost: float | None) -> str:
    return "cost unknown (unpriced model)" if cost is None else f"${cost:.4f}"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ProgressPrinter:
    """An EventSink printing each event as it arrives: in full when `verbose`, else one
    line per root step; `live` adds the status on a terminal (use it as a context
    manager then)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        verbose: bool = True,
        live: bool = False,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.tally = Tally()
        self._heartbeat_s = heartbeat_s
        self._last_printed = time.monotonic()
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.verbose = verbose
        self._iteration = 0
        self._max_iterations = 0
        self._doing = "starting"
        self._blocks: list[str] = []
        self._spinner = Spinner("dots", style="cyan")
        self._live: Live | None = None
        if live and self.console.is_terminal and not self.console.is_dumb_terminal:
            self._live = Live(
                console=self.console,
                get_renderable=self._status,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> ProgressPrinter:
        if self._live is not None:
            self._live.start()
        elif not self.console.is_terminal:
            self._stop_heartbeat.clear()
            self._heartbeat = threading.Thread(
                target=self._beat, name="rlm-progress-heartbeat", daemon=True
            )
            self._heartbeat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()
        if self._heartbeat is not None:
            self._stop_heartbeat.set()
            self._heartbeat.join()
            self._heartbeat = None

    # --- a heartbeat where there is no live status (a log, a pipe) -------------------

    def _beat(self) -> None:
        """A line after every `heartbeat_s` without one: a long block or a slow model
        would otherwise leave a log silent, looking hung."""
        # Checked often, so a line follows soon after the interval whatever its phase.
        while not self._stop_heartbeat.wait(min(self._heartbeat_s / 4, 0.5)):
            if time.monotonic() - self._last_printed >= self._heartbeat_s:
                self._line(
                    f"still {self._doing}; {self.tally.sub_calls()}; {self.tally.spending()}"
                )

    def emit(self, event: Event) -> None:
        self.tally.emit(event)
        if event.depth == 0:
            self._follow_root(event, event.fields)
        if self.verbose:
            render = getattr(self, f"_on_{event.type}", None)
            if render is not None:
                render(event, event.fields)
        elif event.depth == 0:
            self._root_line(event, event.fields)

    # --- what the root loop is doing (the live status) -------------------------------

    def _follow_root(self, event: Event, f: dict[str, Any]) -> None:
        if event.type == "start":
            self._max_iterations = f["max_iterations"]
            self._doing = "starting the sandbox"
        elif event.type == "sandbox_open":
            self._doing = "waiting for the model"
        elif event.type == "model_response":
            self._iteration = f["iteration"]
            self._blocks = f["code_blocks"]
            self._doing = self._running(1) if self._blocks else "waiting for the model"
        elif event.type == "execute":
            more = f["block"] < len(self._blocks) and not f["error"] and f["final"] is None
            self._doing = self._running(f["block"] + 1) if more else "waiting for the model"
        elif event.type == "final":
            self._doing = "done"

    def _running(self, block: int) -> str:
        code = self._blocks[block - 1].strip()
        first = code.splitlines()[0] if code else ""
        return f"running block {block}/{len(self._blocks)}: {first[:60]}"

    def _status(self) -> Group:
        tally = self.tally
        where = f"iteration {self._iteration}/{self._max_iterations}" if self._iteration else ""
        self._spinner.update(
            text=Text.assemble((where + " · " if where else ""), (self._doing, "bold"))
        )
        details = (
            f"{tally.sub_calls()} · sandboxes {tally.sandboxes} · {tally.spending()} · "
            f"{clock(tally.elapsed)}"
        )
        return Group(self._spinner, Text("  " + details, style="dim"))

    # --- one line per root step ------------------------------------------------------

    def _root_line(self, event: Event, f: dict[str, Any]) -> None:
        if event.type == "model_response":
            blocks = len(f["code_blocks"])
            said = f"wrote {blocks} code block(s)" if blocks else "replied without code"
            self._line(
                f"iteration {f['iteration']}: the model {said} "
                f"({f['input_tokens'] + f['cache_read_tokens']:,} in / "
                f"{f['output_tokens']:,} out tokens, {f['latency_s']:.1f} s)"
            )
        elif event.type == "execute":
            error = f["error"]
            outcome = f"failed with {error['name']}" if error else "ran"
            self._line(
                f"  block {f['block']} {outcome} in {f['duration_s']:.1f} s; "
                f"{self.tally.sub_calls()}; {self.tally.spending()}"
            )

    def _line(self, text: str) -> None:
        self._last_printed = time.monotonic()
        self.console.print(f"[dim]{clock(self.tally.elapsed)}[/] {escape(text)}")

    # --- every event in full ---------------------------------------------------------

    def _print(self, event: Event, renderable: str | Syntax) -> None:
        """A child run's lines are indented by depth and start with its run id, since
        concurrent children interleave. On a terminal rich lays them out to its width; in
        a log or a pipe each line is written whole, never cut or padded to a width."""
        self._last_printed = time.monotonic()
        label = f"[{event.run_id} d{event.depth}] " if event.depth else ""
        if self.console.is_terminal:
            grid = Table.grid()
            grid.add_column(no_wrap=True, style="dim")
            grid.add_column()
            grid.add_row(label, renderable)
            self.console.print(Padding(grid, (0, 0, 0, 4 * event.depth)))
            return
        plain = (
            renderable.code
            if isinstance(renderable, Syntax)
            else Text.from_markup(renderable).plain
        )
        for line in plain.rstrip("\n").split("\n"):
            self.console.print(
                Text("    " * event.depth + label + line), soft_wrap=True, crop=False
            )

    def _on_start(self, event: Event, f: dict[str, Any]) -> None:
        who = "RLM run" if event.depth == 0 else f"child run (depth {event.depth})"
        self._print(
            event,
            f"[bold cyan]▶ {who}[/] [dim]{f['model']}, CONTEXT: {f['context_type']} of "
            f"{f['context_chars']:,} chars[/]\n[cyan]query:[/] {_short(f['query'], 200)}",
        )

    def _on_model_response(self, event: Event, f: dict[str, Any]) -> None:
        self._print(
            event,
            f"[bold]iteration {f['iteration']}[/] [dim]{f['input_tokens']:,} in / "
            f"{f['output_tokens']:,} out tokens, {f['latency_s']:.1f} s, "
            f"total cost {self.tally.total_cost()}[/]",
        )
        for code in f["code_blocks"]:
            self._print(event, Syntax(code, "python", theme="ansi_dark", line_numbers=False))
        if not f["code_blocks"]:
            self._print(event, f"[dim]{_short(f['text'], SHOWN_CHARS)}[/]")

    def _on_execute(self, event: Event, f: dict[str, Any]) -> None:
        out = "\n".join(filter(None, [f["stdout"].rstrip(), *f["results"]]))
        if out:
            self._print(event, f"[green]{_short(out, SHOWN_CHARS)}[/]")
        if f["error"]:
            error = f["error"]
            self._print(event, f"[red]{error['name']}: {_short(error['value'], 300)}[/]")
        self._print(
            event,
            f"[dim]block {f['block']}: {f['duration_s']:.2f} s, "
            f"{self.tally.sub_calls_of_run.get(event.run_id, 0)} sub-calls so far, "
            f"total cost {self.tally.total_cost()}[/]",
        )

    def _on_final(self, event: Event, f: dict[str, Any]) -> None:
        self._print(event, f"[bold green]✔ final answer:[/] {_short(f['answer'], 400)}")

    def _on_error(self, event: Event, f: dict[str, Any]) -> None:
        self._print(event, f"[bold red]✘ {escape(f['error'])}[/]")

    def _on_end(self, event: Event, f: dict[str, Any]) -> None:
        stats = f["stats"]
        self.console.print(
            f"[bold]done[/] in {stats['wall_time_s']:.1f} s: {stats['iterations']} iterations, "
            f"{stats['model_calls']} model calls, {sum(stats['sub_calls'].values())} sub-calls, "
            f"{stats['input_tokens'] + stats['cache_read_tokens']:,} in / "
            f"{stats['output_tokens']:,} out tokens, cost {self.tally.total_cost()}"
        )


def _short(text: str, limit: int) -> str:
    """Shortened and escaped: model text and output may hold [brackets] rich would parse."""
    text = text.strip()
    shown = text if len(text) <= limit else text[:limit] + f" … ({len(text):,} chars)"
    return escape(shown)
