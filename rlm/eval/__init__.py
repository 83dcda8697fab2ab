"""Batch evaluation on long-context benchmarks generated offline: S-NIAH (RULER style),
OOLONG-style aggregation and OOLONG-Pairs, as in the RLM paper.

    specs = plan(["sniah"], [2**13, 2**20], n=5, seed=0)
    evaluation = Evaluation(specs, RLMSolver(rlm), ResultStore(Path("out.jsonl")),
                            concurrency=4, run_info={"model": "gpt-4o"})
    rows = summarize(await evaluation.run())

On a Ray cluster the solver travels as a recipe and the tasks as specs, built where they run:

    recipe = RLMRecipe("openai", "gpt-4o")  # rlm.batch
    Evaluation(specs, SolverRecipe(recipe), store, run_info=...,
               executor=RayExecutor("head:6379", env_vars=recipe.forwarded_env()))

`rlm eval` (rlm.cli.eval) does the same from the command line. Lengths are in tokens of
CHARS_PER_TOKEN (4) characters.
"""

from rlm.eval.generators import GENERATORS, build
from rlm.eval.report import markdown, plot, summarize
from rlm.eval.runner import Evaluation
from rlm.eval.scoring import METRICS, score
from rlm.eval.solvers import Attempt, BaselineSolver, RLMSolver, Solver, SolverRecipe
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
    "SolverRecipe",
    "Task",
    "TaskSpec",
    "build",
    "markdown",
    "plan",
    "plot",
    "score",
    "summarize",
]
