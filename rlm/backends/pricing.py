"""What tokens cost: a price table per model, which users can extend.

Prices are USD per million tokens. A model absent from the table has an unknown
cost (None), never 0, so a cost summary cannot silently under-report.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from rlm.backends.base import Usage


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind.

    Cache prices default to the input price when a provider does not bill them
    separately (an over-estimate rather than a free lunch).
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * cache_read
            + usage.cache_write_tokens * cache_write
        ) / 1_000_000


# Published list prices (2025). Anthropic bills cache reads at 0.1x and 5-minute cache
# writes at 1.25x the input price; OpenAI bills cached input at 0.5x and writes nothing.
_SONNET_4 = Price(input=3.0, output=15.0, cache_read=0.30, cache_write=3.75)
_OPUS_4 = Price(input=15.0, output=75.0, cache_read=1.50, cache_write=18.75)
_HAIKU_3_5 = Price(input=0.80, output=4.0, cache_read=0.08, cache_write=1.0)
_HAIKU_4_5 = Price(input=1.0, output=5.0, cache_read=0.10, cache_write=1.25)

DEFAULT_PRICES: Mapping[str, Price] = {
    "claude-sonnet-4-20250514": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4-5-20250929": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-opus-4-20250514": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4-1-20250805": _OPUS_4,
    "claude-opus-4-1": _OPUS_4,
    "claude-3-5-haiku-20241022": _HAIKU_3_5,
    "claude-3-5-haiku-latest": _HAIKU_3_5,
    "claude-haiku-4-5-20251001": _HAIKU_4_5,
    "claude-haiku-4-5": _HAIKU_4_5,
    "gpt-4o": Price(input=2.50, output=10.0, cache_read=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.60, cache_read=0.075),
    # OpenRouter passes Anthropic's prices through; its own reported cost wins anyway.
    "anthropic/claude-sonnet-4": _SONNET_4,
}


class PriceTable:
    """Prices by model name, looked up exactly."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)

    def get(self, model: str) -> Price | None:
        return self._prices.get(model)

    def cost(self, model: str, usage: Usage) -> float | None:
        """The cost of `usage` on `model`, or None if the model's price is unknown."""
        price = self._prices.get(model)
        return None if price is None else price.cost(usage)

    def extended(self, prices: Mapping[str, Price | Mapping[str, float]]) -> PriceTable:
        """A copy with `prices` added, replacing entries of the same name.

        Each value is a `Price` or a mapping with the keys ``input`` and ``output``
        and optionally ``cache_read`` and ``cache_write``.
        """
        merged = dict(self._prices)
        for model, price in prices.items():
            merged[model] = price if isinstance(price, Price) else _price_from_mapping(model, price)
        return PriceTable(merged)

    def extended_from_file(self, path: str | os.PathLike[str]) -> PriceTable:
        """A copy extended with a ``.json`` or ``.toml`` file mapping model names to
        prices, in the format `extended` accepts."""
        path = Path(path)
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            raise ValueError(f"price file {path} must end in .json or .toml")
        if not isinstance(data, dict):
            raise ValueError(f"price file {path} must map model names to prices")
        return self.extended(data)


PricesArg = PriceTable | Mapping[str, Price | Mapping[str, float]] | str | os.PathLike[str] | None


def resolve_prices(prices: PricesArg) -> PriceTable:
    """Turn the `prices` argument backends accept into a table: None means the
    defaults, a mapping or a file path extends the defaults, a table is used as is."""
    if prices is None:
        return PriceTable()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, str | os.PathLike):
        return PriceTable().extended_from_file(prices)
    return PriceTable().extended(prices)


_PRICE_KEYS = {f.name for f in fields(Price)}


def _price_from_mapping(model: str, entry: object) -> Price:
    if not isinstance(entry, Mapping):
        raise ValueError(f"price of {model!r} must be a table of USD per million tokens")
    unknown = set(entry) - _PRICE_KEYS
    if unknown or not {"input", "output"} <= set(entry):
        raise ValueError(
            f"price of {model!r} needs 'input' and 'output' (optional 'cache_read', "
            f"'cache_write'); got {sorted(entry)}"
        )
    try:
        return Price(**{key: float(value) for key, value in entry.items()})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"price of {model!r} must be numbers: {exc}") from None
