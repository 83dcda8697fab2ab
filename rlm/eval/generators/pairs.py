"""OOLONG-Pairs style: questions over pairs of users, answered as a set of pairs.

The records are OOLONG's (rlm.eval.generators.records). The question asks for every
pair of users who both have a record with a given label on the same date; answers are
scored by F1 over the set of pairs. The label is the first, in seeded order, that gives
a non-empty answer.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from rlm.eval.generators.records import LABELS, Record, make_records, render
from rlm.eval.tasks import Task, TaskSpec

QUERY = (
    "List every pair of user IDs such that both users have a record labelled '{label}' "
    "on the same date. Give each pair once as (smaller ID, larger ID), one pair per line."
)


def generate(spec: TaskSpec) -> Task:
    rng = spec.rng()
    records = make_records(rng, spec.chars)
    labels = list(LABELS)
    rng.shuffle(labels)
    for label in labels:
        pairs = same_date_pairs(records, label)
        if pairs:
            break
    gold = "\n".join(f"({a}, {b})" for a, b in sorted(pairs))
    return Task(
        spec=spec,
        context=render(records),
        query=QUERY.format(label=label),
        gold=gold,
        metric="pairs_f1",
        info={"label": label, "pairs": len(pairs), "records": len(records)},
    )


def same_date_pairs(records: list[Record], label: str) -> set[tuple[str, str]]:
    """Pairs (smaller ID first) of distinct users with a `label` record on a shared date."""
    users_by_date: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.label == label:
            users_by_date[record.date].add(record.user)
    return {
        pair
        for users in users_by_date.values()
        for pair in itertools.combinations(sorted(users), 2)
    }
