"""The summary of a results file: a markdown table per task type and length, and a plot
of score and cost against context length."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rlm.eval.store import Record

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class PlotUnavailable(RuntimeError):
    """matplotlib is missing; the message says how to install it."""


@dataclass(frozen=True)
class Row:
    kind: str
    length: int
    tasks: int
    score: float
    cost_usd: float | None
    """Mean over the tasks whose cost is known; None if none is."""
    tokens: float
    iterations: float
    wall_time_s: float
    errors: int


def summarize(records: Iterable[Record]) -> list[Row]:
    groups: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for record in records:
        groups[record["type"], record["length"]].append(record)
    rows = []
    for (kind, length), group in sorted(groups.items()):
        costs = [r["cost_usd"] for r in group if r["cost_usd"] is not None]
        rows.append(
            Row(
                kind=kind,
                length=length,
                tasks=len(group),
                score=statistics.fmean(r["score"] for r in group),
                cost_usd=statistics.fmean(costs) if costs else None,
                tokens=statistics.fmean(r["tokens"] for r in group),
                iterations=statistics.fmean(r["iterations"] for r in group),
                wall_time_s=statistics.fmean(r["wall_time_s"] for r in group),
                errors=sum(bool(r["error"]) for r in group),
            )
        )
    return rows


def markdown(rows: list[Row], title: str) -> str:
    lines = [
        f"## {title}",
        "",
        "| task | length (tokens) | tasks | score | cost ($) | tokens | iterations | wall (s) "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cost = "n/a" if row.cost_usd is None else f"{row.cost_usd:.4f}"
        lines.append(
            f"| {row.kind} | {short_length(row.length)} | {row.tasks} | {row.score:.1%} | {cost} "
            f"| {row.tokens:,.0f} | {row.iterations:.1f} | {row.wall_time_s:.1f} | {row.errors} |"
        )
    return "\n".join(lines) + "\n"


def short_length(tokens: int) -> str:
    """8192 -> 8K, 1048576 -> 1M; other numbers as they are."""
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if tokens >= size and tokens % size == 0:
            return f"{tokens // size}{unit}"
    return str(tokens)


def plot(rows: list[Row], path: Path, title: str) -> Path:
    """Score and mean cost per task against context length, one line per task type; mean
    tokens instead of cost when no cost is known (models missing from the price table)."""
    try:
        # Imported on demand: only plotting needs matplotlib, and it is an extra.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(
            "plot skipped: matplotlib is not installed (pip install 'rlm[eval]')"
        ) from exc

    figure = draw(rows, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def draw(rows: list[Row], title: str) -> Figure:
    """The figure `plot` saves (matplotlib must be importable)."""
    import matplotlib.pyplot as plt

    by_kind: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row)
    figure, (score_axes, spend_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    priced = any(row.cost_usd is not None for row in rows)
    for kind, kind_rows in by_kind.items():
        lengths = [row.length for row in kind_rows]
        score_axes.plot(lengths, [row.score * 100 for row in kind_rows], marker="o", label=kind)
        points = [
            (row.length, row.cost_usd if priced else row.tokens)
            for row in kind_rows
            if row.cost_usd is not None or not priced
        ]
        if points:
            spend_axes.plot(*zip(*points, strict=True), marker="o", label=kind)
    score_axes.set(ylabel="score (%)", ylim=(-3, 103), title="Score")
    # Costs and tokens span orders of magnitude across lengths (and between RLM and baseline).
    if priced:
        unknown = sum(row.cost_usd is None for row in rows)
        note = f" (unknown for {unknown} point(s), left out)" if unknown else ""
        spend_axes.set(ylabel="mean cost per task ($)", title="Cost" + note, yscale="log")
    else:
        spend_axes.set(
            ylabel="mean tokens per task",
            title="Tokens (cost unknown: no price for this model)",
            yscale="log",
        )
    for axes in (score_axes, spend_axes):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("context length (tokens)")
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
