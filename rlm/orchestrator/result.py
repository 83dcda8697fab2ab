"""What a completion returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlm.orchestrator.stats import RLMStats


@dataclass
class RLMResult:
    """The outcome of one completion.

    `answer` is the final answer, or on failure the best partial answer ("" if none).
    `history` has one dict per iteration of the root run: iteration, response,
    code_blocks, outputs (one per executed block), sub_calls, final, model_time_s,
    sandbox_time_s, usage (and finish, on the step that answered). `error` says why
    `success` is False. `finish` says how the answer was given: "final", "final_var",
    "answer_dict", or "unmarked" for a prose answer without a FINAL marker (a success,
    but worth a look); None without an answer.
    """

    answer: str
    stats: RLMStats
    history: list[dict[str, Any]] = field(default_factory=list)
    success: bool = True
    error: str | None = None
    finish: str | None = None
