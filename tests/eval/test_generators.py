"""Generators: same seed, same text; every gold answer recomputed from the text alone."""

from __future__ import annotations

import collections
import cProfile
import itertools
import pstats
import re
import tracemalloc

import pytest

from rlm.eval.generators import build
from rlm.eval.generators.oolong import QUESTIONS
from rlm.eval.generators.records import CUES, LABELS, label_of
from rlm.eval.generators.sniah import DEPTHS
from rlm.eval.scoring import parse_pairs
from rlm.eval.tasks import CHARS_PER_TOKEN, Task, TaskSpec, plan

NEEDLE = re.compile(r"One of the special magic numbers for (\S+) is: (\d+)\.")
RECORD = re.compile(r"^Date: ([A-Z][a-z]{2} \d\d, \d{4}) \|\| User: (\d{5}) \|\| Instance: (.+)$")
ALL_CUES = {cue for cues in CUES.values() for cue in cues}


@pytest.mark.parametrize("kind", ["sniah", "oolong", "pairs"])
def test_same_seed_same_task_other_seed_other_task(kind: str) -> None:
    spec = TaskSpec(kind, 1 << 13, 3, seed=7)
    first, again = build(spec), build(TaskSpec(kind, 1 << 13, 3, seed=7))
    other = build(TaskSpec(kind, 1 << 13, 3, seed=8))
    assert (first.context, first.query, first.gold) == (again.context, again.query, again.gold)
    assert first.context != other.context


@pytest.mark.parametrize("kind", ["sniah", "oolong", "pairs"])
@pytest.mark.parametrize("length", [1 << 13, 1 << 16])
def test_contexts_fill_their_length_without_exceeding_it(kind: str, length: int) -> None:
    chars = len(build(TaskSpec(kind, length, 0, 0)).context)
    assert length * CHARS_PER_TOKEN - 200 <= chars <= length * CHARS_PER_TOKEN


def test_plan_covers_every_kind_length_and_index_shortest_first() -> None:
    specs = plan(["sniah", "pairs"], [1 << 14, 1 << 13], 2, seed=1)
    assert [spec.id for spec in specs] == [
        "sniah-8192-0", "sniah-8192-1", "pairs-8192-0", "pairs-8192-1",
        "sniah-16384-0", "sniah-16384-1", "pairs-16384-0", "pairs-16384-1",
    ]  # fmt: skip


# --- S-NIAH -----------------------------------------------------------------------------


def _check_needle(task: Task) -> None:
    """The needle is there once, names the queried key, holds the gold value, and sits
    at the task's depth (to within a sentence)."""
    needles = NEEDLE.findall(task.context)
    assert len(needles) == 1
    key, value = needles[0]
    assert f"special magic number for {key} mentioned" in task.query
    assert value == task.gold
    offset = task.context.index("One of the special magic numbers")
    assert abs(offset - task.info["depth"] * len(task.context)) < 300


@pytest.mark.parametrize("index", range(len(DEPTHS)))
def test_sniah_needle_at_every_depth_in_both_haystacks(index: int) -> None:
    task = build(TaskSpec("sniah", 1 << 13, index, 0))
    _check_needle(task)
    assert task.info["haystack"] == ("essay" if index % 2 == 0 else "noise")


def test_essay_haystack_is_varied_prose() -> None:
    text = build(TaskSpec("sniah", 1 << 15, 0, 0)).context
    sentences = re.findall(r"[A-Z][^.]*\.", text)
    assert len(set(sentences)) > 300
    assert text.count("\n\n") > 50  # paragraphs


def test_a_2_to_the_24_token_document_is_fast_and_memory_sane(huge_sniah: Task) -> None:
    _check_needle(huge_sniah)
    assert len(huge_sniah.context) == 1 << 26
    tracemalloc.start()
    # Fast means built in bulk, under one Python call per 1000 words: calls are counted,
    # not seconds (the machine may be busy).
    profile = cProfile.Profile()
    task = profile.runcall(build, TaskSpec("sniah", 1 << 24, 5, 0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pstats.Stats(profile).total_calls < task.context.count(" ") // 1000
    assert peak < 4 * (1 << 26)  # a few copies of the text at most, never per-word objects


# --- OOLONG and pairs -------------------------------------------------------------------


def _rows(context: str) -> list[tuple[str, str, str]]:
    """(date, user, label) of every record, the label inferred from the text by the rule."""
    header, *lines = context.splitlines()
    assert "sports, science, food, travel, finance" in header
    rows = []
    for line in lines:
        match = RECORD.match(line)
        assert match, line
        date, user, instance = match.groups()
        cues = [word for word in re.findall(r"[a-z]+", instance.lower()) if word in ALL_CUES]
        assert len(cues) == 1, instance  # the label is implied by exactly one cue
        rows.append((date, user, label_of(instance)))
    return rows


def _recompute(query: str, rows: list[tuple[str, str, str]]) -> str:
    labels = [label for _, _, label in rows]
    counts = collections.Counter({label: 0 for label in LABELS}) + collections.Counter(labels)
    if user := re.search(r"among the records of user (\d+)", query):
        mine = collections.Counter(lab for _, u, lab in rows if u == user.group(1))
        (top, n), *rest = mine.most_common()
        assert not rest or rest[0][1] < n
        return top
    if "most often" in query or "least often" in query:
        ordered = sorted(counts.items(), key=lambda item: item[1], reverse="most" in query)
        assert ordered[0][1] != ordered[1][1]
        return ordered[0][0]
    label = re.search(r"labelled '(\w+)'", query).group(1)
    if user := re.search(r"records of user (\d+)", query):
        return str(sum(u == user.group(1) and lab == label for _, u, lab in rows))
    if date := re.search(r"records dated (.+?) are", query):
        return str(sum(d == date.group(1) and lab == label for d, _, lab in rows))
    return str(counts[label])


@pytest.mark.parametrize("length", [1 << 13, 1 << 16])
def test_oolong_gold_follows_from_the_text_for_every_question(length: int) -> None:
    asked = set()
    for index in range(len(QUESTIONS)):
        task = build(TaskSpec("oolong", length, index, 0))
        assert _recompute(task.query, _rows(task.context)) == task.gold
        assert task.metric == ("numeric" if task.gold.isdigit() else "exact")
        asked.add(task.info["question"])
    assert asked == set(QUESTIONS)


@pytest.mark.parametrize("length", [1 << 13, 1 << 16])
def test_pairs_gold_follows_from_the_text(length: int) -> None:
    for index in range(3):
        task = build(TaskSpec("pairs", length, index, 0))
        label = re.search(r"labelled '(\w+)'", task.query).group(1)
        users_by_date = collections.defaultdict(set)
        for date, user, row_label in _rows(task.context):
            if row_label == label:
                users_by_date[date].add(user)
        expected = {
            pair
            for users in users_by_date.values()
            for pair in itertools.combinations(sorted(users, key=int), 2)
        }
        assert expected and parse_pairs(task.gold) == expected
