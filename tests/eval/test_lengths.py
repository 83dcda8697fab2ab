"""--lengths: plain numbers, K/M suffixes, powers of two and ranges of them."""

from __future__ import annotations

import pytest

from rlm.eval.lengths import parse_length, parse_lengths


def test_forms_and_ranges() -> None:
    assert parse_lengths("8192, 16K,2^15") == [8192, 16384, 32768]
    assert parse_lengths("2^13..2^16,1M") == [8192, 16384, 32768, 65536, 1 << 20]
    assert parse_length("128000") == 128000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("eight", "is not a length"),
        ("2^9", r"outside 2\^10\.\.2\^26"),
        ("2^27", "outside"),
        ("2^16..2^13", "runs backwards"),
        (" , ", "no lengths"),
    ],
)
def test_bad_lengths_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_lengths(text)
