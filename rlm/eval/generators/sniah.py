"""S-NIAH in RULER's style: one needle, "One of the special magic numbers for KEY is:
VALUE.", hidden at a controlled depth of a haystack; the model must return VALUE.

Task `index` fixes the needle depth (cycling 0%, 10%, ..., 100% of the haystack) and the
haystack: essay-like prose for even indices, repeated noise sentences for odd ones.
"""

from __future__ import annotations

from rlm.eval.generators import filler
from rlm.eval.tasks import Task, TaskSpec

NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUERY = (
    "What is the special magic number for {key} mentioned in the provided text? "
    "Answer with the number only."
)
DEPTHS = tuple(step / 10 for step in range(11))


def generate(spec: TaskSpec) -> Task:
    rng = spec.rng()
    depth = DEPTHS[spec.index % len(DEPTHS)]
    haystack = "essay" if spec.index % 2 == 0 else "noise"
    key = f"{rng.choice(filler.ADJECTIVES)}-{rng.choice(filler.NOUNS)}"
    value = str(rng.randrange(1_000_000, 10_000_000))
    needle = NEEDLE.format(key=key, value=value)

    size = max(spec.chars - len(needle) - 1, 0)
    text = filler.essay(rng, size) if haystack == "essay" else filler.noise(size)
    at = _sentence_boundary(text, int(depth * len(text)))
    context = f"{text[:at]}{needle} {text[at:]}"
    return Task(
        spec=spec,
        context=context,
        query=QUERY.format(key=key),
        gold=value,
        metric="contains",
        info={"depth": depth, "haystack": haystack},
    )


def _sentence_boundary(text: str, position: int) -> int:
    """The start of the first sentence at or after `position` (len(text) if none), so the
    needle never splits a sentence of the haystack."""
    if position <= 0:
        return 0
    found = text.find(". ", position - 2)
    return len(text) if found == -1 else found + 2
