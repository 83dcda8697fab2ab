"""The two ways a task is answered: by an RLM, or (the baseline) by the plain model
reading the context cut to its window, as the paper compares them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rlm.backends import Backend, WatchedBackend
from rlm.batch.recipe import RLMRecipe
from rlm.errors import BackendError
from rlm.eval.tasks import CHARS_PER_TOKEN, Task

if TYPE_CHECKING:
    from rlm.orchestrator import RLM


@dataclass
class Attempt:
    """What answering one task produced and cost; `error` says why it has no answer."""

    answer: str
    cost_usd: float | None
    tokens: int
    iterations: int
    wall_time_s: float
    error: str | None = None
    setup_error: BackendError | None = None
    """Set by solvers that run elsewhere (SolverRecipe): the endpoint rejected the key or
    could not be reached before answering anything, so every task would fail alike."""


class Solver(Protocol):
    mode: str

    async def __call__(self, task: Task, trace: Path | None = None) -> Attempt:
        """Answer `task`; a failure is returned in Attempt.error, never raised. Solvers
        that have a trajectory write its events to the JSONL file `trace`, if given."""
        ...


@dataclass
class RLMSolver:
    rlm: RLM
    mode: str = "rlm"

    async def __call__(self, task: Task, trace: Path | None = None) -> Attempt:
        result = await self.rlm.acompletion(task.context, task.query, trace=trace)
        stats = result.stats
        return Attempt(
            answer=result.answer,
            cost_usd=stats.cost_usd,
            tokens=stats.total_tokens,
            iterations=stats.iterations,
            wall_time_s=stats.wall_time_s,
            error=result.error,
        )


@dataclass
class BaselineSolver:
    """One call to `model` with the context's head and the question, the whole prompt
    kept within `window_tokens` (CHARS_PER_TOKEN characters each)."""

    backend: Backend
    model: str
    window_tokens: int
    mode: str = "baseline"

    def prompt(self, task: Task) -> str:
        question = f"\n\nAnswer the question about the text above.\n{task.query}"
        room = max(self.window_tokens * CHARS_PER_TOKEN - len(question), 0)
        return task.context[:room] + question

    async def __call__(self, task: Task, trace: Path | None = None) -> Attempt:
        """One model call: there is no trajectory, so no `trace` is written."""
        started = time.monotonic()
        messages = [{"role": "user", "content": self.prompt(task)}]
        try:
            completion = await self.backend.acomplete(messages, self.model)
        except BackendError as exc:
            return Attempt(
                "", None, 0, 1, time.monotonic() - started, f"{type(exc).__name__}: {exc}"
            )
        usage = completion.usage
        tokens = (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_tokens
            + usage.cache_write_tokens
        )
        return Attempt(completion.text, usage.cost_usd, tokens, 1, time.monotonic() - started)


@dataclass(frozen=True)
class SolverRecipe:
    """A solver described by value, for executors that ship tasks elsewhere (Ray): built
    where the task runs, its backend configured from that process's environment. It
    answers as RLMSolver does, or with `window_tokens` set, as the baseline."""

    rlm: RLMRecipe
    window_tokens: int | None = None

    @property
    def mode(self) -> str:
        return "rlm" if self.window_tokens is None else "baseline"

    async def __call__(self, task: Task, trace: Path | None = None) -> Attempt:
        try:
            backend, model = self.rlm.build_backend()
        except (ValueError, BackendError) as exc:  # this node lacks the key or endpoint
            setup = exc if isinstance(exc, BackendError) else None
            return Attempt("", None, 0, 0, 0.0, f"{type(exc).__name__}: {exc}", setup)
        watched = WatchedBackend(backend)
        solver: Solver
        if self.window_tokens is None:
            solver = RLMSolver(self.rlm.build(watched, model))
        else:
            solver = BaselineSolver(watched, model, self.window_tokens)
        try:
            attempt = await solver(task, trace)
        finally:
            await watched.aclose()
        if attempt.error:
            attempt.setup_error = watched.setup_error
        return attempt
