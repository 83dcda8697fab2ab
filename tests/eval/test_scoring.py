"""Scorers: 0.75^|error| for counts, exact labels, F1 over pairs, RULER's contains."""

from __future__ import annotations

import pytest

from rlm.eval.scoring import parse_pairs, score


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("12", 1.0),
        ("Answer: 12", 1.0),
        ("There are 1,2 ... no: 14", 0.75**2),
        ("10", 0.75**2),
        ("15.", 0.75**3),
        ("no idea", 0.0),
    ],
)
def test_numeric_is_three_quarters_to_the_error(answer: str, expected: float) -> None:
    assert score("numeric", answer, "12") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("science", 1.0), ("Label: 'Science'.", 1.0), ("**science**", 1.0), ("sciences", 0.0)],
)
def test_exact_ignores_case_quotes_and_an_answer_prefix_only(answer: str, expected: float) -> None:
    assert score("exact", answer, "science") == expected


def test_contains_finds_the_value_anywhere() -> None:
    assert score("contains", "The special magic number is 4417023.", "4417023") == 1.0
    assert score("contains", "4417022", "4417023") == 0.0


def test_pairs_f1_over_unordered_pairs() -> None:
    gold = "(10001, 10002)\n(10001, 10003)\n(10002, 10004)\n(10003, 10004)"
    shuffled = "(10002, 10001), (10003,10001) (10004, 10002) (10003, 10004)"
    assert score("pairs_f1", shuffled, gold) == 1.0
    # 2 of 3 predicted are right (precision 2/3), 2 of 4 gold found (recall 1/2).
    half = "(10001, 10002) (10004, 10003) (10005, 10006)"
    assert score("pairs_f1", half, gold) == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert score("pairs_f1", "none", gold) == 0.0
    assert score("pairs_f1", "", "") == 1.0


def test_a_pair_of_one_user_with_itself_is_not_a_pair() -> None:
    assert parse_pairs("(10001, 10001) (10002, 10001)") == {("10001", "10002")}
