"""OOLONG-style aggregation: questions over the labels of every record of a context.

The labels are never written down: answering takes labeling each record (by reading
it) and aggregating. Task `index` picks the question type (cycling through QUESTIONS);
count answers are scored 0.75^|error|, label answers by exact match.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable

from rlm.eval.generators.records import LABELS, Record, make_records, render
from rlm.eval.tasks import Task, TaskSpec

QUESTIONS = ("count", "most_common", "least_common", "user_count", "date_count", "user_top")
_NUMBER = " Answer with the number only."
_LABEL = " Answer with the label only."


def generate(spec: TaskSpec) -> Task:
    rng = spec.rng()
    records = make_records(rng, spec.chars)
    question = QUESTIONS[spec.index % len(QUESTIONS)]
    query, gold, metric, asked = _ask(question, records, rng)
    return Task(
        spec=spec,
        context=render(records),
        query=query,
        gold=gold,
        metric=metric,
        info={"question": asked, "records": len(records)},
    )


def _ask(question: str, records: list[Record], rng: random.Random) -> tuple[str, str, str, str]:
    """(query, gold, metric, question type asked). A label question whose answer would be
    a tie falls back to a count question, so every gold answer is unique."""
    label = rng.choice(LABELS)
    sample = rng.choice(records)
    if question == "most_common" and (top := _extreme(records, max)) is not None:
        return f"Which label occurs most often among all records?{_LABEL}", top, "exact", question
    if question == "least_common" and (low := _extreme(records, min)) is not None:
        query = f"Which label occurs least often among all records?{_LABEL}"
        return query, low, "exact", question
    if question == "user_top":
        users = sorted({r.user for r in records})
        rng.shuffle(users)
        for user in users:
            top = _extreme([r for r in records if r.user == user], max)
            if top is not None:
                query = f"Which label occurs most often among the records of user {user}?"
                return query + _LABEL, top, "exact", question
    if question == "user_count":
        count = sum(r.user == sample.user and r.label == label for r in records)
        query = f"How many records of user {sample.user} are labelled '{label}'?{_NUMBER}"
        return query, str(count), "numeric", question
    if question == "date_count":
        count = sum(r.date == sample.date and r.label == label for r in records)
        query = f"How many records dated {sample.date} are labelled '{label}'?{_NUMBER}"
        return query, str(count), "numeric", question
    count = sum(r.label == label for r in records)
    return f"How many records are labelled '{label}'?{_NUMBER}", str(count), "numeric", "count"


def _extreme(records: list[Record], pick: Callable[[Iterable[int]], int]) -> str | None:
    """The label with the most (pick=max) or fewest (min) records, None on a tie."""
    counts = Counter({label: 0 for label in LABELS})
    counts.update(r.label for r in records)
    best = pick(counts.values())
    winners = [label for label, count in counts.items() if count == best]
    return winners[0] if len(winners) == 1 else None
