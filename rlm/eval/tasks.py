"""What an evaluation is made of: task specs (cheap, identify a task) and tasks (built).

A task is fully determined by its spec's kind, length, index and seed, so a resumed run
rebuilds exactly the tasks it skipped. Lengths are in tokens, counted as
CHARS_PER_TOKEN characters each: a length of 2**13 tokens is a 32,768-character context.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4
"""Our token: English text averages about four characters per token in common tokenizers."""


@dataclass(frozen=True)
class TaskSpec:
    kind: str
    length: int
    """Context length in tokens (CHARS_PER_TOKEN characters each)."""
    index: int
    seed: int

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.length}-{self.index}"

    @property
    def chars(self) -> int:
        return self.length * CHARS_PER_TOKEN

    def rng(self) -> random.Random:
        # Seeding with a string is stable across processes and Python versions.
        return random.Random(f"{self.seed}/{self.kind}/{self.length}/{self.index}")


@dataclass(frozen=True)
class Task:
    spec: TaskSpec
    context: str
    query: str
    gold: str
    metric: str
    """How answers are scored: a name in rlm.eval.scoring.METRICS."""
    info: dict[str, Any] = field(default_factory=dict)
    """What varies between tasks of one kind (needle depth, question type), for the record."""

    @property
    def id(self) -> str:
        return self.spec.id


def plan(kinds: Iterable[str], lengths: Iterable[int], n: int, seed: int) -> list[TaskSpec]:
    """`n` tasks of every kind at every length, shortest contexts first."""
    return [
        TaskSpec(kind, length, index, seed)
        for length in sorted(set(lengths))
        for kind in kinds
        for index in range(n)
    ]
