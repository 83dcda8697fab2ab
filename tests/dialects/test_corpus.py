"""Every case of the dialect corpus, replayed through the real loop and a real sandbox,
ends as the case expects: the answer, how it finished, the blocks that failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm.backends import ScriptedBackend
from rlm.orchestrator import RLM
from tests.dialects.replay import Case, load_corpus, missing_modules, replay

CASES = load_corpus()
RUNTIMES = [pytest.param("container", marks=pytest.mark.container), "local"]


def test_the_corpus_covers_recorded_and_hand_written_cases() -> None:
    kinds = {case.kind for case in CASES}
    assert kinds == {"recorded", "hand-written"}
    assert len({(case.source, case.id) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", CASES, ids=[f"{c.source}/{c.id}" for c in CASES])
async def test_case_replays_as_expected(case: Case, runtime: str) -> None:
    if missing := missing_modules(case, runtime):
        pytest.skip(f"this host lacks {', '.join(missing)}")
    done = await replay(case, runtime)
    assert done.problems == []


async def test_the_trace_says_how_the_run_finished(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    backend = ScriptedBackend(["```repl\nprint(1)\n```", "Final answer: 1"])
    result = await RLM(backend, runtime="local", trace=trace).acompletion("x", "q")
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    ends = {event["type"]: event for event in events if event["type"] in ("final", "end")}
    assert (result.answer, result.finish) == ("1", "unmarked")
    assert ends["final"]["finish"] == ends["end"]["finish"] == "unmarked"
