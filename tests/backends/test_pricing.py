"""The price table: costs, unknown models, user extensions."""

from __future__ import annotations

import pytest

from rlm.backends import Price, PriceTable, Usage
from rlm.backends.pricing import DEFAULT_PRICES, resolve_prices


def test_every_default_model_of_a_paid_preset_is_priced():
    for model in ("claude-sonnet-4-20250514", "gpt-4o", "anthropic/claude-sonnet-4"):
        assert model in DEFAULT_PRICES
    for model in ("claude-3-5-haiku-20241022", "claude-opus-4-20250514", "gpt-4o-mini"):
        assert model in DEFAULT_PRICES


def test_cost_counts_every_kind_of_token():
    price = Price(input=1, output=2, cache_read=0.5, cache_write=3)
    usage = Usage(input_tokens=10**6, output_tokens=10**6, cache_read_tokens=10**6,
                  cache_write_tokens=10**6)  # fmt: skip

    assert price.cost(usage) == pytest.approx(6.5)


def test_cache_prices_default_to_the_input_price():
    usage = Usage(cache_read_tokens=10**6, cache_write_tokens=10**6)

    assert Price(input=1, output=9).cost(usage) == pytest.approx(2.0)


def test_unknown_model_costs_none_not_zero():
    assert PriceTable().cost("no-such-model", Usage(input_tokens=5)) is None


def test_dict_extends_and_overrides_the_defaults():
    table = resolve_prices({"gpt-4o": {"input": 0, "output": 0}, "mine": Price(1, 1)})

    assert table.cost("gpt-4o", Usage(input_tokens=100)) == 0
    assert table.get("mine") == Price(1, 1)
    assert table.get("claude-sonnet-4-20250514") == DEFAULT_PRICES["claude-sonnet-4-20250514"]


def test_toml_file(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('["qwen3-coder:32b"]\ninput = 0.0\noutput = 0.0\n\n'
                    '["my/model"]\ninput = 1\noutput = 2\ncache_read = 0.1\n')  # fmt: skip

    table = resolve_prices(path)

    assert table.get("my/model") == Price(input=1, output=2, cache_read=0.1)
    assert table.cost("qwen3-coder:32b", Usage(input_tokens=10)) == 0.0


def test_json_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"m": {"input": 1.5, "output": 3}}')

    assert resolve_prices(str(path)).get("m") == Price(input=1.5, output=3)


def test_a_table_is_used_as_is():
    table = PriceTable({})

    assert resolve_prices(table) is table
    assert table.cost("gpt-4o", Usage()) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": 1}, "needs 'input' and 'output'"),
        ({"input": 1, "output": 1, "cached": 1}, "needs 'input' and 'output'"),
        ({"input": "cheap", "output": 1}, "must be numbers"),
        (3, "must be a table"),
    ],
)
def test_bad_entries_are_rejected(entry, message):
    with pytest.raises(ValueError, match=message):
        PriceTable().extended({"m": entry})


def test_bad_file_suffix(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("m: 1")

    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        resolve_prices(path)
