"""Batch evaluation on long-context benchmarks generated offline: S-NIAH (RULER style),
OOLONG-style aggregation and OOLONG-Pairs, as in the RLM paper.

    specs = plan(["sniah"], [2**13, 2**20], n=5, seed=0)
    evaluation = Evaluation(specs, RLMSolver(rlm), ResultStore(Path("out.jsonl")),
                            concurrency=4, run_info={"model": "gpt-4o"})
    rows = summarize(await evaluation.run())

`rlm eval` (rlm.cli.eval) does the same from the command line. Lengths are in tokens of
CHARS_PER_TOKEN (4) characters.
"""

from rlm.eval.generators import GENERATORS, build
from rlm.eval.report import markdown, plot, summarize
from rlm.eval.runner import Evaluation
from rlm.eval.scoring import METRICS, score
from rlm.eval.solvers import Attempt, BaselineSolver, RLMSolver, Solver
from rlm.eval.store import ResultsFileError, ResultStore
from rlm.eval.tasks import CHARS_PER_TOKEN, Task, TaskSpec, plan

__all__ = [
    "CHARS_PER_TOKEN",
    "GENERATORS",
    "METRICS",
    "Attempt",
    "BaselineSolver",
    "Evaluation",
    "RLMSolver",
    "ResultStore",
    "ResultsFileError",
    "Solver",
    "Task",
    "TaskSpec",
    "build",
    "markdown",
    "plan",
    "plot",
    "score",
    "summarize",
]
