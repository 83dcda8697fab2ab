"""Scores in [0, 1] for an answer against the gold answer, by metric name.

- contains (S-NIAH, as RULER): 1 if the gold value appears in the answer.
- numeric (OOLONG counts): 0.75 ** |answer - gold|, the answer being the last integer
  in the reply ("Answer: 12" and "12" both read 12); 0 if it has none.
- exact (OOLONG labels): 1 if the answer, lower-cased and stripped of quotes,
  punctuation and a leading "answer:" or "label:", equals the gold label.
- pairs_f1 (OOLONG-Pairs): F1 of the set of pairs "(a, b)" in the answer against the
  gold set; order within a pair and among pairs does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_INTEGER = re.compile(r"-?\d[\d,]*")
_PAIR = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_PREFIX = re.compile(r"^(final answer|answer|label)\s*[:=-]\s*")


def contains(answer: str, gold: str) -> float:
    return float(gold.strip().lower() in answer.lower())


def numeric(answer: str, gold: str) -> float:
    numbers = _INTEGER.findall(answer)
    if not numbers:
        return 0.0
    return 0.75 ** abs(int(numbers[-1].replace(",", "")) - int(gold))


def exact(answer: str, gold: str) -> float:
    return float(_normalize(answer) == _normalize(gold))


def pairs_f1(answer: str, gold: str) -> float:
    predicted, expected = parse_pairs(answer), parse_pairs(gold)
    if not predicted and not expected:
        return 1.0
    hits = len(predicted & expected)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(expected)
    return 2 * precision * recall / (precision + recall)


def parse_pairs(text: str) -> set[tuple[str, str]]:
    """Every "(a, b)" in `text`, as (smaller, larger); a pair of one ID with itself is
    not a pair."""
    return {
        (min(a, b, key=int), max(a, b, key=int)) for a, b in _PAIR.findall(text) if int(a) != int(b)
    }


METRICS: dict[str, Callable[[str, str], float]] = {
    "contains": contains,
    "numeric": numeric,
    "exact": exact,
    "pairs_f1": pairs_f1,
}


def score(metric: str, answer: str, gold: str) -> float:
    return METRICS[metric](answer, gold)


def _normalize(text: str) -> str:
    text = _PREFIX.sub("", text.strip().lower())
    return text.strip(" \t\n\"'`.!*")
