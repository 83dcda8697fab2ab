"""Runs the tasks a results file lacks, CONCURRENCY at a time, recording each as it ends.

Each task is generated only when its turn comes and dropped once recorded, so at most
CONCURRENCY contexts are in memory however many tasks are planned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rlm.eval.generators import build
from rlm.eval.scoring import score
from rlm.eval.solvers import Attempt, Solver
from rlm.eval.store import Record, ResultsFileError, ResultStore
from rlm.eval.tasks import Task, TaskSpec


class Evaluation:
    """`specs` answered by `solver`, results in `store`.

    `run_info` (model, seed, ...) is written into every record; records already in the
    store must carry the same values, so one file never mixes two configurations.
    With `retry_errors`, tasks whose record has an error run again. `setup_error` is
    asked after a task fails: an exception it returns (an endpoint rejecting the key,
    which every other task would hit too) ends the run, that task left unrecorded.
    """

    def __init__(
        self,
        specs: list[TaskSpec],
        solver: Solver,
        store: ResultStore,
        *,
        concurrency: int,
        run_info: dict[str, Any],
        retry_errors: bool = False,
        setup_error: Callable[[], Exception | None] = lambda: None,
    ) -> None:
        self.specs = specs
        self.solver = solver
        self.store = store
        self.concurrency = concurrency
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
        """Run every pending task; return the records of all planned tasks, in plan order."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(spec: TaskSpec) -> None:
            async with slots:
                # Generating a large context takes a while; keep the loop serving others.
                task = await asyncio.to_thread(build, spec)
                attempt = await self.solver(task)
            if attempt.error and (fatal := self.setup_error()) is not None:
                raise fatal
            record = self._record(task, attempt)
            self.store.append(record)
            self.done[spec.id] = record
            if on_done is not None:
                on_done(record)

        try:
            # A setup error cancels the tasks still running: they would fail the same way.
            async with asyncio.TaskGroup() as group:
                for spec in self.todo:
                    group.create_task(one(spec))
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        return [self.done[spec.id] for spec in self.specs]

    def _record(self, task: Task, attempt: Attempt) -> Record:
        return {
            "id": task.id,
            "type": task.spec.kind,
            "length": task.spec.length,
            **self.run_info,
            "answer": attempt.answer,
            "gold": task.gold,
            "score": score(task.metric, attempt.answer, task.gold),
            "cost_usd": attempt.cost_usd,
            "tokens": attempt.tokens,
            "iterations": attempt.iterations,
            "wall_time_s": round(attempt.wall_time_s, 3),
            "error": attempt.error,
            "info": task.info,
        }

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
