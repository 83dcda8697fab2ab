"""Progress of a run on stderr: what the root loop is doing and what the tree has spent.

`Progress` is an event sink (see rlm.orchestrator.events) plus a sandbox factory hook.
Events give iterations, code, tokens and cost; the factory adds what events cannot say
while it happens: how many sandboxes are open and how many llm_query calls are in
flight (a sub_call event arrives only when the call ends).

The root loop's steps are printed as plain lines, so a log or a pipe gets a readable
account. On a terminal a live status (rich) sits below them: spinner, iteration, what
the code is doing, sub-calls running and done, tokens, cost and elapsed time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from rlm.orchestrator import Event, SandboxFactory
from rlm.sandbox import LLMHandler, LLMRequest, Sandbox


@dataclass
class Tally:
    """What the whole run tree has done so far."""

    started: float = field(default_factory=time.monotonic)
    iteration: int = 0
    max_iterations: int = 0
    doing: str = "starting"
    sandboxes: int = 0
    sub_calls_running: int = 0
    sub_calls_done: int = 0
    sub_calls_failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add_usage(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
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


def cost_text(cost: float | None) -> str:
    return "cost unknown (unpriced model)" if cost is None else f"${cost:.4f}"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Progress:
    """An EventSink keeping the tally; prints root steps unless `steps` is False (with
    --verbose the orchestrator's own printer tells them in full)."""

    def __init__(self, console: Console, *, steps: bool = True) -> None:
        self.console = console
        self.tally = Tally()
        self._steps = steps
        self._blocks: list[str] = []
        self._spinner = Spinner("dots", style="cyan")
        self._live: Live | None = None
        if console.is_terminal and not console.is_dumb_terminal:
            self._live = Live(
                console=console,
                get_renderable=self._status,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    # --- events ----------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        f, tally = event.fields, self.tally
        if event.type == "model_response":
            tally.add_usage(f["input_tokens"] + f["cache_read_tokens"], f["output_tokens"],
                            f["cost_usd"])  # fmt: skip
        elif event.type == "sub_call":
            tally.sub_calls_done += 1
            tally.sub_calls_failed += f["error"] is not None
            if f["usage"] is not None:
                usage = f["usage"]
                tally.add_usage(
                    usage["input_tokens"] + usage["cache_read_tokens"],
                    usage["output_tokens"],
                    usage["cost_usd"],
                )
        if event.depth == 0:
            self._root_step(event, f)

    def _root_step(self, event: Event, f: dict[str, Any]) -> None:
        tally = self.tally
        if event.type == "start":
            tally.max_iterations = f["max_iterations"]
            tally.doing = "starting the sandbox"
        elif event.type == "model_response":
            tally.iteration = f["iteration"]
            self._blocks = f["code_blocks"]
            if self._blocks:
                tally.doing = self._running(1)
                said = f"wrote {len(self._blocks)} code block(s)"
            else:
                tally.doing = "waiting for the model"
                said = "replied without code"
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
                f"{tally.sub_calls()}; {tally.spending()}"
            )
            more = f["block"] < len(self._blocks) and not error and f["final"] is None
            tally.doing = self._running(f["block"] + 1) if more else "waiting for the model"
        elif event.type == "final":
            tally.doing = "done"

    def _running(self, block: int) -> str:
        code = self._blocks[block - 1].strip()
        first = code.splitlines()[0] if code else ""
        return f"running block {block}/{len(self._blocks)}: {first[:60]}"

    def _line(self, text: str) -> None:
        if self._steps:
            self.console.print(f"[dim]{clock(self.tally.elapsed)}[/] {escape(text)}")

    # --- the live status -------------------------------------------------------------

    def _status(self) -> Group:
        tally = self.tally
        where = f"iteration {tally.iteration}/{tally.max_iterations}" if tally.iteration else ""
        self._spinner.update(
            text=Text.assemble((where + " · " if where else ""), (tally.doing, "bold"))
        )
        details = (
            f"{tally.sub_calls()} · sandboxes {tally.sandboxes} · {tally.spending()} · "
            f"{clock(tally.elapsed)}"
        )
        return Group(self._spinner, Text("  " + details, style="dim"))

    # --- the sandbox hook --------------------------------------------------------------

    def sandboxes(self, base: SandboxFactory) -> SandboxFactory:
        """A factory like `base` that reports open sandboxes and sub-calls in flight."""
        return TrackedSandboxes(
            runtime=base.runtime,
            image=base.image,
            limits=base.limits,
            batch_concurrency=base.batch_concurrency,
            tally=self.tally,
        )


@dataclass
class TrackedSandboxes(SandboxFactory):
    tally: Tally = field(default_factory=Tally)

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        tally = self.tally

        async def counted(request: LLMRequest) -> str:
            tally.sub_calls_running += 1
            try:
                return await llm_handler(request)
            finally:
                tally.sub_calls_running -= 1

        sandbox = await super().acquire(context, counted, depth)
        tally.sandboxes += 1
        if depth == 0:
            tally.doing = "waiting for the model"
        return sandbox

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        await super().release(sandbox, depth)
        # Counted only once really released: what the interrupt report trusts.
        self.tally.sandboxes -= 1
