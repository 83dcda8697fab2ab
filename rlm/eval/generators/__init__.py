"""Offline, seeded task generators: S-NIAH, OOLONG-style aggregation and its pairs variant."""

from __future__ import annotations

from collections.abc import Callable

from rlm.eval.generators import oolong, pairs, sniah
from rlm.eval.tasks import Task, TaskSpec

GENERATORS: dict[str, Callable[[TaskSpec], Task]] = {
    "sniah": sniah.generate,
    "oolong": oolong.generate,
    "pairs": pairs.generate,
}


def build(spec: TaskSpec) -> Task:
    """The task a spec names (same spec, same task)."""
    return GENERATORS[spec.kind](spec)
