"""Batch completions: many (context, query) pairs, locally or on a Ray cluster.

    from rlm.batch import RLMRecipe, batch
    results = batch(RLMRecipe("openai", "gpt-4o"), pairs, executor="ray", ray_address="auto")

Executors (rlm.batch.executor) also run the evaluation's tasks (rlm.eval.runner). The Ray
executor lives in rlm.batch.ray_executor and needs `pip install 'rlm[ray]'`.
"""

from rlm.batch.api import BatchResult, abatch, batch
from rlm.batch.executor import Executor, ExecutorSetupError, LocalExecutor
from rlm.batch.probe import RuntimeProbe
from rlm.batch.recipe import RLMRecipe

__all__ = [
    "BatchResult",
    "Executor",
    "ExecutorSetupError",
    "LocalExecutor",
    "RLMRecipe",
    "RuntimeProbe",
    "abatch",
    "batch",
]
