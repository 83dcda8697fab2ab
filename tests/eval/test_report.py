"""The summary table and the plot."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest

from rlm.eval.report import PlotUnavailable, draw, markdown, plot, summarize


def _record(kind: str, length: int, score: float, cost: float | None, error: str | None = None):
    return {
        "type": kind,
        "length": length,
        "score": score,
        "cost_usd": cost,
        "tokens": 1000,
        "iterations": 2,
        "wall_time_s": 1.5,
        "error": error,
    }


RECORDS = [
    _record("sniah", 8192, 1.0, 0.01),
    _record("sniah", 8192, 0.0, None, "boom"),
    _record("sniah", 1 << 20, 0.5, 0.03),
    _record("oolong", 8192, 0.75, None),
]


def test_one_row_per_type_and_length_with_means() -> None:
    table = markdown(summarize(RECORDS), "rlm: openai / gpt-4o")
    lines = table.splitlines()
    assert lines[0] == "## rlm: openai / gpt-4o"
    assert lines[4] == "| oolong | 8K | 1 | 75.0% | n/a | 1,000 | 2.0 | 1.5 | 0 |"
    # The unknown cost is left out of the mean rather than counted as 0.
    assert lines[5] == "| sniah | 8K | 2 | 50.0% | 0.0100 | 1,000 | 2.0 | 1.5 | 1 |"
    assert lines[6].startswith("| sniah | 1M | 1 | 50.0% | 0.0300 |")


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = plot(summarize(RECORDS), tmp_path / "out" / "results.png", "title")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_plot_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    advice = r"matplotlib is not installed \(pip install 'rlm\[eval\]'\)"
    with pytest.raises(PlotUnavailable, match=advice):
        plot(summarize(RECORDS), tmp_path / "results.png", "title")
    assert not (tmp_path / "results.png").exists()


def test_unpriced_models_plot_tokens_and_say_so() -> None:
    unpriced = [_record("sniah", 8192, 1.0, None), _record("sniah", 1 << 20, 0.5, None)]
    spend = draw(summarize(unpriced), "ollama").axes[1]
    assert spend.get_title() == "Tokens (cost unknown: no price for this model)"
    assert spend.get_ylabel() == "mean tokens per task"
    assert list(spend.get_lines()[0].get_ydata()) == [1000, 1000]


def test_a_partly_priced_run_plots_cost_and_counts_the_unknown_points() -> None:
    spend = draw(summarize(RECORDS), "mixed").axes[1]
    assert spend.get_title() == "Cost (unknown for 1 point(s), left out)"
    assert spend.get_ylabel() == "mean cost per task ($)"
