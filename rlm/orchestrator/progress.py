"""verbose=True: a readable account of a run on stderr, rendered with rich from its events.

Child runs are indented by depth. Sub-calls are counted rather than listed (a batched
query can make hundreds); the count and the running cost appear after every execute.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.syntax import Syntax

from rlm.orchestrator.events import Event

SHOWN_CHARS = 600


class ProgressPrinter:
    """An EventSink printing each event as it arrives."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._cost = 0.0
        self._cost_known = True
        self._sub_calls: dict[str, int] = {}

    def emit(self, event: Event) -> None:
        render = getattr(self, f"_on_{event.type}", None)
        if render is not None:
            render(event, event.fields)

    def _print(self, event: Event, renderable: Any) -> None:
        self.console.print(Padding(renderable, (0, 0, 0, 4 * event.depth)))

    def _on_start(self, event: Event, f: dict[str, Any]) -> None:
        who = "RLM run" if event.depth == 0 else f"child run (depth {event.depth})"
        self._print(
            event,
            f"[bold cyan]▶ {who}[/] [dim]{f['model']}, CONTEXT: {f['context_type']} of "
            f"{f['context_chars']:,} chars[/]\n[cyan]query:[/] {_short(f['query'], 200)}",
        )

    def _on_model_response(self, event: Event, f: dict[str, Any]) -> None:
        self._add_cost(f["cost_usd"])
        self._print(
            event,
            f"[bold]iteration {f['iteration']}[/] [dim]{f['input_tokens']:,} in / "
            f"{f['output_tokens']:,} out tokens, {f['latency_s']:.1f} s, "
            f"total cost {self._cost_text()}[/]",
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
            f"{self._sub_calls.get(event.run_id, 0)} sub-calls so far, "
            f"total cost {self._cost_text()}[/]",
        )

    def _on_sub_call(self, event: Event, f: dict[str, Any]) -> None:
        self._sub_calls[event.run_id] = self._sub_calls.get(event.run_id, 0) + 1
        if f["usage"] is not None:
            self._add_cost(f["usage"]["cost_usd"])

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
            f"{stats['output_tokens']:,} out tokens, cost {self._cost_text()}"
        )

    def _add_cost(self, cost: float | None) -> None:
        if cost is None:
            self._cost_known = False
        else:
            self._cost += cost

    def _cost_text(self) -> str:
        return f"${self._cost:.4f}" + ("" if self._cost_known else " + unknown")


def _short(text: str, limit: int) -> str:
    """Shortened and escaped: model text and output may hold [brackets] rich would parse."""
    text = text.strip()
    shown = text if len(text) <= limit else text[:limit] + f" … ({len(text):,} chars)"
    return escape(shown)
