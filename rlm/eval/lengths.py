"""Parsing --lengths: context lengths in tokens, written as RULER reports them."""

from __future__ import annotations

import re

MIN_LENGTH = 1 << 10
MAX_LENGTH = 1 << 26  # 256 MB of text: beyond this a context no longer fits in memory
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20}
_ONE = re.compile(r"^(?:2\^(\d+)|(\d+)([km]?))$")


def parse_lengths(text: str) -> list[int]:
    """Comma-separated lengths, each `8192`, `8K` (x1024), `1M` (x2^20) or `2^13`; a range
    `2^13..2^16` (or `8K..64K`) gives every power of two from one end to the other.
    Raises ValueError with a message naming the bad item."""
    lengths: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        if ".." in item:
            low, _, high = item.partition("..")
            start, stop = parse_length(low), parse_length(high)
            if start > stop:
                raise ValueError(f"range {item!r} runs backwards")
            length = start
            while length <= stop:
                lengths.add(length)
                length *= 2
        else:
            lengths.add(parse_length(item))
    if not lengths:
        raise ValueError("no lengths given")
    return sorted(lengths)


def parse_length(item: str) -> int:
    """One length: `8192`, `8K` (x1024), `1M` (x2^20) or `2^13`, within 2^10..2^26."""
    match = _ONE.match(item.strip().lower())
    if match is None:
        raise ValueError(f"{item!r} is not a length: write e.g. 8192, 8K, 1M or 2^13")
    power, number, unit = match.groups()
    length = 1 << int(power) if power is not None else int(number) * _UNITS[unit]
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"length {item} is outside 2^10..2^26 tokens")
    return length
