"""Runs the tasks a results file lacks, through an executor, recording each as it ends.

Each task is generated where it runs, only when its turn comes, and dropped once answered:
at most `concurrency` contexts exist at once however many tasks are planned, and on a
Ray cluster only the small spec travels to the worker and the record travels back. The
driver alone writes the results file, once per task, whatever the executor retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm.batch.executor import Executor, LocalExecutor
from rlm.eval.generators import build
from rlm.eval.scoring import score
from rlm.eval.solvers import Attempt, Solver
from rlm.eval.store import Record, ResultsFileError, ResultStore
from rlm.eval.tasks import TaskSpec


@dataclass(frozen=True)
class Outcome:
    """A task answered: what its record needs, without the (large) context."""

    spec: TaskSpec
    gold: str
    score: float
    info: dict[str, Any]
    attempt: Attempt
    trace: Path | None = None
    """The task's trace, if one was asked for and the solver wrote it."""

    def record(self, run_info: dict[str, Any], results: Path) -> Record:
        """The task's record in the results file `results`; its trace is named relative
        to that file (as `rlm view` reads it)."""
        attempt = self.attempt
        trace = {"trace": os.path.relpath(self.trace, results.parent)} if self.trace else {}
        return {
            "id": self.spec.id,
            "type": self.spec.kind,
            "length": self.spec.length,
            **run_info,
            "answer": attempt.answer,
            "gold": self.gold,
            "score": self.score,
            "cost_usd": attempt.cost_usd,
            "tokens": attempt.tokens,
            "iterations": attempt.iterations,
            "wall_time_s": round(attempt.wall_time_s, 3),
            "error": attempt.error,
            "info": self.info,
            **trace,
        }


@dataclass(frozen=True)
class AnswerTask:
    """The job an executor runs per task spec: build the task, answer it, score it.
    With `traces` (a directory; on a cluster, one every node reaches at the same path)
    the answer's events go to `traces/<task id>.jsonl`, written where the task runs."""

    solver: Solver
    traces: Path | None = None

    async def __call__(self, spec: TaskSpec) -> Outcome:
        # Generating a large context takes a while; keep the loop serving others.
        task = await asyncio.to_thread(build, spec)
        trace = None
        if self.traces is not None:
            trace = self.traces / f"{spec.id}.jsonl"
            # A task run again (a retried error, a killed run's task in flight, a lost
            # worker) starts its trace afresh rather than appending a second run to it.
            trace.unlink(missing_ok=True)
        attempt = await self.solver(task, trace)
        marks = score(task.metric, attempt.answer, task.gold)
        written = trace if trace is not None and trace.exists() else None
        return Outcome(spec, task.gold, marks, task.info, attempt, written)


class Evaluation:
    """`specs` answered by `solver`, results in `store`.

    Tasks run on `executor` (default: this process, `concurrency` at a time); a remote
    executor needs a solver that pickles (rlm.eval.solvers.SolverRecipe).
    `run_info` (model, seed, ...) is written into every record; records already in the
    store must carry the same values, so one file never mixes two configurations.
    With `retry_errors`, tasks whose record has an error run again. `setup_error` is
    asked after a task fails: an exception it returns (an endpoint rejecting the key,
    which every other task would hit too) ends the run, that task left unrecorded; so
    does one the failed attempt carries (Attempt.setup_error, from a remote solver).
    With `traces`, a directory, each task answered keeps its trace there (see AnswerTask)
    and its record names it under "trace"; the traces of tasks skipped stay as they are.
    """

    def __init__(
        self,
        specs: list[TaskSpec],
        solver: Solver,
        store: ResultStore,
        *,
        concurrency: int = 4,
        run_info: dict[str, Any],
        retry_errors: bool = False,
        setup_error: Callable[[], Exception | None] = lambda: None,
        executor: Executor | None = None,
        traces: Path | None = None,
    ) -> None:
        self.specs = specs
        self.traces = traces
        self.solver = solver
        self.store = store
        self.executor = executor or LocalExecutor(concurrency)
        self.setup_error = setup_error
        self.run_info = {"mode": solver.mode, **run_info}
        self.done = store.load()
        self._check_same_run()
        planned = {spec.id for spec in specs}
        kept = {
            task_id: record
            for task_id, record in self.done.items()
            if task_id in planned and not (retry_errors and record.get("error"))
        }
        self.todo = [spec for spec in specs if spec.id not in kept]
        self.skipped = len(specs) - len(self.todo)

    async def run(self, on_done: Callable[[Record], None] | None = None) -> list[Record]:
        """Run every pending task; return the records of all planned tasks, in plan order.
        Leaving early (a setup error, a cancel) stops the tasks still running."""
        outcomes = self.executor.stream(AnswerTask(self.solver, self.traces), self.todo)
        async with contextlib.aclosing(outcomes):
            async for _, outcome in outcomes:
                # A setup error ends the run: every other task would fail the same way.
                attempt = outcome.attempt
                if attempt.error and (fatal := self.setup_error() or attempt.setup_error):
                    raise fatal
                record = outcome.record(self.run_info, self.store.path)
                self.store.append(record)
                self.done[outcome.spec.id] = record
                if on_done is not None:
                    on_done(record)
        return [self.done[spec.id] for spec in self.specs]

    def _check_same_run(self) -> None:
        for record in self.done.values():
            differs = {
                key: record.get(key)
                for key, value in self.run_info.items()
                if record.get(key) != value
            }
            if differs:
                found = ", ".join(f"{key}={value!r}" for key, value in differs.items())
                raise ResultsFileError(
                    f"{self.store.path} holds results of another configuration ({found}); "
                    "choose another --out to keep both"
                )
