"""A trace, read into the page model the viewer draws: a tree of runs and their steps.

`read_trace` parses a JSONL trace (rlm.orchestrator.events) line by line into a
`PageBuilder`; the builder can keep taking lines as a live run appends them. Reading stops
at the first damaged line (a killed run's half-written last line, a corrupt middle):
everything before it is kept and `Page.damage` says where it stopped. A file whose first
line is not an event of a schema version we read raises `NotATrace`.

Times on the page are seconds since the trace's first event, from each event's wall
clock `time`, so several completions appended to one trace share one time axis.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlm.orchestrator.events import EVENT_FIELDS, SCHEMA_VERSION, Event

COMMON_FIELDS = ("v", "type", "time", "elapsed_s", "run_id", "parent_id", "depth")
# Keys another rlm may add to final/error/end events to say how a run finished
# (FINAL, FINAL_VAR, ...); shown when present.
FINISH_KEYS = ("finish", "finished_by")
_NUMBER = (int, float)
# The JSON types of the fields the page computes with or draws as text (None is allowed
# for every field): a line that breaks them is damage, not something to draw.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "time": _NUMBER,
    "elapsed_s": _NUMBER,
    "run_id": str,
    "parent_id": str,
    "depth": int,
    "iteration": int,
    "block": int,
    "query": str,
    "model": str,
    "text": str,
    "code": str,
    "stdout": str,
    "stderr": str,
    "answer": str,
    "final": str,
    "partial_answer": str,
    "prompt_preview": str,
    "answer_preview": str,
    "code_blocks": list,
    "results": list,
    "error": (str, dict),
    "usage": dict,
    "stats": dict,
    "context_chars": int,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cost_usd": _NUMBER,
    "latency_s": _NUMBER,
    "duration_s": _NUMBER,
}


class NotATrace(ValueError):
    """The file is not an rlm trace we can read (the message says why, in one line)."""


@dataclass
class Iteration:
    """One model reply of a run, the code it ran and the sub-calls that code made."""

    iteration: int
    reply: str | None = None
    code_blocks: list[str] = field(default_factory=list)
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    # [start, end] of the model call, in page seconds.
    span: list[float] | None = None
    # execute and sub_call events, their fields as written plus "span".
    executes: list[dict[str, Any]] = field(default_factory=list)
    sub_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ModelTotals:
    """Calls, tokens and cost; an unknown cost makes the total unknown (None), as in
    rlm.orchestrator.stats."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = 0.0

    def add(self, usage: dict[str, Any], cost: float | None, calls: int = 1) -> None:
        self.calls += calls
        self.input_tokens += usage.get("input_tokens") or 0
        self.output_tokens += usage.get("output_tokens") or 0
        self.cache_read_tokens += usage.get("cache_read_tokens") or 0
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost


@dataclass
class Run:
    """One RLM loop: the root of a completion, or a child run serving an llm_query."""

    run_id: str
    parent_id: str | None
    depth: int
    model: str | None = None
    query: str | None = None
    context_type: str | None = None
    context_chars: int | None = None
    max_iterations: int | None = None
    max_depth: int | None = None
    start: float = 0.0
    end: float = 0.0
    # running, answered or failed
    status: str = "running"
    answer: str | None = None
    error: str | None = None
    error_kind: str | None = None
    finish: str | None = None
    # What this run's own model calls spent (its replies and its plain sub-calls).
    usage: ModelTotals = field(default_factory=ModelTotals)
    iterations: list[Iteration] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    # The root's completion: the end event's success and statistics.
    completion: dict[str, Any] | None = None


@dataclass
class Page:
    source: str
    runs: dict[str, Run]
    roots: list[str]
    by_model: dict[str, ModelTotals]
    totals: ModelTotals
    events: int
    duration_s: float
    # {"line": n, "reason": "..."} where reading stopped, or None.
    damage: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = "trace"
        data["schema_version"] = SCHEMA_VERSION
        return data

    def nested(self, run_id: str) -> dict[str, Any]:
        """One run as JSON with its child runs nested in it under "children"."""
        run = asdict(self.runs[run_id])
        run["children"] = [self.nested(child) for child in self.runs[run_id].children]
        return run


class PageBuilder:
    """Takes trace lines in order and keeps the page model up to date."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.runs: dict[str, Run] = {}
        self.roots: list[str] = []
        self.by_model: dict[str, ModelTotals] = {}
        self.events = 0
        self.lines = 0
        self.damage: dict[str, Any] | None = None
        self._t0: float | None = None
        self._last = 0.0

    def add_line(self, line: str) -> bool:
        """Read one line; False (and `damage` set) once a line cannot be read."""
        if self.damage is not None:
            return False
        self.lines += 1
        if not line.strip():
            return True
        try:
            event = json.loads(line)
            problem = _problem(event)
        except json.JSONDecodeError as exc:
            event, problem = None, f"not JSON ({exc.msg} at column {exc.colno})"
        if problem is not None:
            if self.events == 0:
                raise NotATrace(f"not an rlm trace: line {self.lines}: {problem}")
            self.damage = {"line": self.lines, "reason": problem}
            return False
        self.add_event(event)
        return True

    def add_event(self, event: dict[str, Any]) -> None:
        """Add one parsed, checked event (a line's JSON)."""
        self.events += 1
        if self._t0 is None:
            self._t0 = float(event["time"])
        now = float(event["time"]) - self._t0
        self._last = max(self._last, now)
        run = self._run(event, now)
        run.end = max(run.end, now)
        kind = event["type"]
        if kind == "start":
            for name in ("model", "query", "context_type", "context_chars"):
                setattr(run, name, event[name])
            run.max_iterations, run.max_depth = event["max_iterations"], event["max_depth"]
            run.start = now
        elif kind == "model_response":
            self._model_response(run, event, now)
        elif kind == "execute":
            step = _iteration(run, event["iteration"])
            step.executes.append(_with_span(event, now, event.get("duration_s")))
        elif kind == "sub_call":
            step = _iteration(run, event["iteration"])
            step.sub_calls.append(_with_span(event, now, event.get("duration_s")))
            usage = event.get("usage")
            if usage:  # a plain model call this run's code made
                self._count(run, event.get("model") or "?", usage, usage.get("cost_usd"))
        elif kind == "final":
            run.status, run.answer = "answered", event["answer"]
            run.finish = _finish(event) or run.finish
        elif kind == "error":
            run.status, run.error, run.error_kind = "failed", event["error"], event["kind"]
            run.answer = event["partial_answer"] or None
        elif kind == "end":
            run.completion = {
                "success": event["success"],
                "error": event["error"],
                "stats": event["stats"],
            }
            run.finish = _finish(event) or run.finish
            if run.status == "running":
                run.status = "answered" if event["success"] else "failed"
                run.answer, run.error = event["answer"], event["error"]

    def page(self) -> Page:
        totals = ModelTotals()
        for entry in self.by_model.values():
            totals.add(asdict(entry), entry.cost_usd, entry.calls)
        return Page(
            source=self.source,
            runs=self.runs,
            roots=self.roots,
            by_model=self.by_model,
            totals=totals,
            events=self.events,
            duration_s=self._last,
            damage=self.damage,
        )

    def _run(self, event: dict[str, Any], now: float) -> Run:
        run_id = str(event["run_id"])
        run = self.runs.get(run_id)
        if run is None:
            parent = event.get("parent_id")
            run = Run(run_id, parent, int(event.get("depth") or 0), start=now, end=now)
            self.runs[run_id] = run
            if parent is not None and parent in self.runs:
                self.runs[parent].children.append(run_id)
            else:
                # A child whose parent is not in the file still shows, at the top.
                self.roots.append(run_id)
        return run

    def _model_response(self, run: Run, event: dict[str, Any], now: float) -> None:
        step = _iteration(run, event["iteration"])
        step.reply = event["text"]
        step.code_blocks = list(event["code_blocks"] or [])
        step.model = event["model"]
        step.input_tokens = event["input_tokens"] or 0
        step.output_tokens = event["output_tokens"] or 0
        step.cache_read_tokens = event["cache_read_tokens"] or 0
        step.cost_usd = event["cost_usd"]
        step.latency_s = event["latency_s"] or 0.0
        step.span = [max(now - step.latency_s, 0.0), now]
        self._count(run, step.model or run.model or "?", event, step.cost_usd)

    def _count(self, run: Run, model: str, usage: dict[str, Any], cost: float | None) -> None:
        run.usage.add(usage, cost)
        self.by_model.setdefault(model, ModelTotals()).add(usage, cost)


class PageSink:
    """An EventSink building the page model of a run as it goes (for `rlm --json`)."""

    def __init__(self) -> None:
        self.builder = PageBuilder("run")

    def emit(self, event: Event) -> None:
        self.builder.add_event(event.to_json())

    def child_runs(self) -> list[dict[str, Any]]:
        """The root runs' child runs, nested, in the order they started."""
        page = self.builder.page()
        return [page.nested(child) for root in page.roots for child in page.runs[root].children]


def read_trace(path: str | Path) -> Page:
    """The page model of the trace at `path`; NotATrace if it is not one (or is empty)."""
    path = Path(path)
    builder = PageBuilder(path.name)
    try:
        with path.open("rb") as f:
            for raw in f:
                if not builder.add_line(raw.decode("utf-8", errors="replace")):
                    break
    except NotATrace as exc:
        raise NotATrace(f"{path}: {exc}") from None
    except OSError as exc:
        raise NotATrace(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if builder.events == 0:
        raise NotATrace(f"{path}: no events: the file is empty")
    return builder.page()


def _problem(event: Any) -> str | None:
    """Why a parsed line is not an event we can read, or None."""
    if not isinstance(event, dict) or "type" not in event or "v" not in event:
        return "not a trace event (no schema version 'v' or 'type')"
    version = event["v"]
    if not isinstance(version, int) or version < 1:
        return f"unknown schema version {version!r}"
    if version > SCHEMA_VERSION:
        return (
            f"schema version {version} is newer than this rlm reads ({SCHEMA_VERSION}): "
            "upgrade rlm to view it"
        )
    expected = EVENT_FIELDS.get(event["type"])
    if expected is None:
        return f"unknown event type {event['type']!r}"
    # Extra fields are fine (a compatible addition); missing ones are not.
    missing = [name for name in (*COMMON_FIELDS, *expected) if name not in event]
    if missing:
        return f"{event['type']} event lacks {', '.join(missing)}"
    if event["time"] is None:
        return "the event has no time"
    # A sub-call's usage holds tokens and a cost, checked as the event's own are.
    for fields in (event, event.get("usage") or {}):
        for name, kinds in FIELD_TYPES.items():
            value = fields.get(name)
            if value is not None and not isinstance(value, kinds):
                return f"{event['type']} event: {name} is {type(value).__name__}"
    return None


def _iteration(run: Run, number: int) -> Iteration:
    # Events of one run come in order, so the step is the last one or a new one.
    if run.iterations and run.iterations[-1].iteration == number:
        return run.iterations[-1]
    for step in run.iterations:
        if step.iteration == number:
            return step
    step = Iteration(number)
    run.iterations.append(step)
    return step


def _with_span(event: dict[str, Any], now: float, duration: Any) -> dict[str, Any]:
    fields = {k: v for k, v in event.items() if k not in COMMON_FIELDS}
    length = float(duration) if isinstance(duration, int | float) else 0.0
    fields["span"] = [max(now - length, 0.0), now]
    return fields


def _finish(event: dict[str, Any]) -> str | None:
    for key in FINISH_KEYS:
        if event.get(key):
            return str(event[key])
    return None
