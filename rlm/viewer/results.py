"""An `rlm eval` results file (rlm.eval.store) as a page: a table of tasks.

A results file is JSONL with one record per task (`id`, `score`, `cost_usd`,
`wall_time_s`, ...). A record may name its run's trace under "trace" (a path, relative
to the results file); `link_traces` then writes that trace's page beside it and links the
task to it. As with traces, reading stops at a damaged line and says where.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rlm.viewer.model import NotATrace, read_trace
from rlm.viewer.render import render_html

REQUIRED = ("id", "score")


@dataclass
class ResultsPage:
    source: str
    tasks: list[dict[str, Any]] = field(default_factory=list)
    damage: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "results",
            "source": self.source,
            "tasks": self.tasks,
            "damage": self.damage,
        }


def looks_like_results(path: Path) -> bool:
    """True when the first line is an eval record rather than a trace event."""
    try:
        with path.open("rb") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "v" not in first and all(k in first for k in REQUIRED)


def read_results(path: Path) -> ResultsPage:
    """The tasks of a results file, a later record of a task replacing an earlier one (as
    `rlm eval` resumes)."""
    page = ResultsPage(path.name)
    tasks: dict[str, dict[str, Any]] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
                page.damage = {"line": number, "reason": "not an rlm eval record"}
                break
            tasks[str(record["id"])] = record
    if not tasks:
        raise NotATrace(f"{path}: no eval records")
    page.tasks = list(tasks.values())
    return page


def link_traces(page: ResultsPage, results: Path, output: Path) -> int:
    """Write the page of each task's trace beside the trace and link the task to it (as
    `trace_href`, relative to `output`); returns how many pages were written. A trace that
    cannot be read is noted on its task as `trace_problem`."""
    written = 0
    for task in page.tasks:
        named = task.get("trace")
        if not isinstance(named, str) or not named:
            continue
        trace = results.parent / named
        target = trace.with_suffix(".html")
        try:
            if target.resolve() in (trace.resolve(), results.resolve(), output.resolve()):
                raise NotATrace(f"{trace}: its page would overwrite {target}")
            target.write_text(render_html(read_trace(trace).to_json()), encoding="utf-8")
        except (NotATrace, OSError) as exc:
            task["trace_problem"] = str(exc)
            continue
        # "./" and quoting keep a file name from reading as a URL scheme or fragment.
        task["trace_href"] = "./" + quote(os.path.relpath(target, output.parent))
        written += 1
    return written
