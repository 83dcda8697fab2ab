"""OOLONG-style data: lines `Date: ... || User: ... || Instance: ...` whose labels are
implied, not stated.

Each instance is a short remark about one topic (the label). Exactly one cue word of
that topic appears in it, and the rest of the remark is neutral, so the label follows
from a rule (`label_of`) that a scripted model can apply, while a language model reads it
as plain topic classification. Counts scale with the context: about ten records per
date and forty per user, whatever the length.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

LABELS = ("sports", "science", "food", "travel", "finance")
CUES = {
    "sports": ("goalkeeper", "marathon", "referee", "stadium", "tennis", "playoffs", "relay"),
    "science": ("telescope", "molecule", "laboratory", "genome", "physics", "fossil", "neuron"),
    "food": ("recipe", "bakery", "noodles", "curry", "dessert", "oven", "espresso"),
    "travel": ("passport", "airport", "luggage", "itinerary", "hostel", "cruise", "visa"),
    "finance": ("dividend", "mortgage", "stocks", "budget", "invoice", "pension", "loan"),
}
_OPENERS = (
    "Honestly,", "Yesterday", "My neighbour says", "I keep thinking that", "Funny how",
    "Last week", "Everyone knows", "I read that", "Not sure why but", "Today",
)  # fmt: skip
_MIDDLES = (
    "the {cue} was the best part of the day",
    "nobody talked about anything but the {cue}",
    "I spent an hour on the {cue} again",
    "the {cue} story made me laugh",
    "my sister asked me about the {cue}",
    "I finally understood the {cue}",
    "the {cue} turned out better than expected",
    "I could not stop thinking about the {cue}",
)
_CLOSERS = ("", " and that is fine", " for some reason", ", to be fair", " once more", " again")
_CUE_LABEL = {cue: label for label, cues in CUES.items() for cue in cues}
_WORD = re.compile(r"[a-z]+")
LINE = re.compile(r"^Date: (.+?) \|\| User: (\d+) \|\| Instance: (.*)$", re.MULTILINE)
DATE_FORMAT = "%b %d, %Y"
HEADER = (
    "Each line below is one record: a date, a user ID and a short remark. Every remark is "
    f"about exactly one of these topics: {', '.join(LABELS)}. The topic is its label.\n"
)


@dataclass(frozen=True)
class Record:
    date: str
    user: str
    instance: str
    label: str

    def line(self) -> str:
        return f"Date: {self.date} || User: {self.user} || Instance: {self.instance}"


def label_of(instance: str) -> str:
    """The labeling rule: the topic whose cue word the remark contains."""
    for word in _WORD.findall(instance.lower()):
        if word in _CUE_LABEL:
            return _CUE_LABEL[word]
    raise ValueError(f"no topic cue in {instance!r}")


def make_records(rng: random.Random, n_chars: int) -> list[Record]:
    """Records whose lines, under HEADER, fill about `n_chars` characters (never more)."""
    mean_line = 110  # measured over the templates; only sizes the user and date pools
    expected = max(n_chars // mean_line, 10)
    users = _user_ids(rng, max(expected // 40, 6))
    start = datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randrange(365))
    dates = [
        (start + datetime.timedelta(days=day)).strftime(DATE_FORMAT)
        for day in range(max(expected // 10, 5))
    ]
    records: list[Record] = []
    budget = n_chars - len(HEADER)
    for record in _endless(rng, users, dates):
        budget -= len(record.line()) + 1
        if budget < 0:
            break
        records.append(record)
    return records


def render(records: list[Record]) -> str:
    return HEADER + "".join(record.line() + "\n" for record in records)


def parse(context: str) -> list[tuple[str, str, str]]:
    """(date, user, instance) of every record line of a rendered context."""
    return LINE.findall(context)


def _endless(rng: random.Random, users: list[str], dates: list[str]) -> Iterator[Record]:
    while True:
        label = rng.choice(LABELS)
        middle = rng.choice(_MIDDLES).format(cue=rng.choice(CUES[label]))
        instance = f"{rng.choice(_OPENERS)} {middle}{rng.choice(_CLOSERS)}."
        yield Record(rng.choice(dates), rng.choice(users), instance, label)


def _user_ids(rng: random.Random, count: int) -> list[str]:
    return [str(user) for user in rng.sample(range(10_000, 100_000), count)]
