"""The RLM loop: prompts the root model, runs its code in sandboxes, serves recursion."""

from rlm.orchestrator.budget import BudgetExceeded, BudgetLimits
from rlm.orchestrator.events import EVENT_FIELDS, SCHEMA_VERSION, Event
from rlm.orchestrator.result import RLMResult
from rlm.orchestrator.rlm import RLM
from rlm.orchestrator.sandboxes import Sandboxes, SandboxFactory, WarmPoolFactory
from rlm.orchestrator.stats import RLMStats

__all__ = [
    "EVENT_FIELDS",
    "RLM",
    "SCHEMA_VERSION",
    "BudgetExceeded",
    "BudgetLimits",
    "Event",
    "RLMResult",
    "RLMStats",
    "SandboxFactory",
    "Sandboxes",
    "WarmPoolFactory",
]
