"""Replay the dialect corpus through rlm's real loop and sandbox (`make replay`).

Each case's replies are played by a scripted root model, in order; sub-calls get "42".
A case reports the outcome and how many of the blocks that ran failed.

    python -m tests.dialects.replay [--runtime container|local] [--case ID ...]

prints one line per case and the two shares the issue sets targets for: blocks that ran
without error (target 90%) and, of the runs that ended with an answer where they were
recorded (or were written to), runs that reach one in rlm (target 80%).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from rlm.backends import Message, ScriptedBackend
from rlm.errors import BackendError
from rlm.orchestrator import RLM, RLMResult

CORPUS = Path(__file__).parent / "corpus"
SUB_ANSWER = "42"


@dataclass
class Case:
    id: str
    source: str  # the corpus file's stem
    kind: str  # "recorded" or "hand-written"
    context: Any
    query: str
    replies: list[str]
    expect: dict[str, Any]
    answered_originally: bool
    max_iterations: int
    needs: list[str] = field(default_factory=list)


@dataclass
class Replayed:
    case: Case
    result: RLMResult
    blocks: int
    block_errors: int
    feedback: list[str]

    @property
    def problems(self) -> list[str]:
        """How the replay differs from what the case expects (empty: as expected)."""
        expect, result, found = self.case.expect, self.result, []
        answer = result.answer if result.success else None
        if "answer_pattern" in expect:
            if answer is None or not re.fullmatch(expect["answer_pattern"], answer):
                found.append(f"answer {answer!r} does not match {expect['answer_pattern']!r}")
        elif answer != expect.get("answer"):
            found.append(f"answer {answer!r}, expected {expect.get('answer')!r}")
        if "finish" in expect and result.finish != expect["finish"]:
            found.append(f"finish {result.finish!r}, expected {expect['finish']!r}")
        if self.block_errors != expect.get("block_errors", 0):
            found.append(
                f"{self.block_errors} block(s) failed, expected {expect.get('block_errors', 0)}"
            )
        wanted = expect.get("feedback_contains")
        if wanted and not any(wanted in turn for turn in self.feedback):
            found.append(f"no feedback turn says {wanted!r}")
        return found


def load_corpus(directory: Path = CORPUS) -> list[Case]:
    cases = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for raw in document["cases"]:
            cases.append(
                Case(
                    id=raw["id"],
                    source=path.stem,
                    kind=document["source"]["kind"],
                    context=raw["context"],
                    query=raw["query"],
                    replies=raw["replies"],
                    expect=raw["expect"],
                    answered_originally=raw["answered_originally"],
                    # Room for every reply, so a run that never finishes uses them all.
                    max_iterations=raw.get("max_iterations", len(raw["replies"])),
                    needs=raw.get("needs", []),
                )
            )
    return cases


def _responder(case: Case) -> Any:
    def respond(messages: list[Message], model: str) -> str:
        if not messages[0]["content"].startswith("Query:"):
            return SUB_ANSWER  # an llm_query from the replayed code
        turn = sum(message["role"] == "assistant" for message in messages)
        if turn >= len(case.replies):
            raise BackendError("the case has no more replies")
        return case.replies[turn]

    return respond


async def replay(case: Case, runtime: str) -> Replayed:
    backend = ScriptedBackend(_responder(case))
    rlm = RLM(
        backend,
        model="replay",
        max_iterations=case.max_iterations,
        max_depth=1,
        runtime=runtime,
    )
    result = await rlm.acompletion(case.context, case.query)
    # Only the model's own blocks count, not a FINAL_VAR the loop ran for a prose marker.
    outputs = [
        output for step in result.history for output in step["outputs"][: len(step["code_blocks"])]
    ]
    feedback = [
        call.messages[-1]["content"]
        for call in backend.calls
        if call.messages[0]["content"].startswith("Query:") and len(call.messages) > 1
    ]
    errors = sum(output["error"] is not None for output in outputs)
    return Replayed(case, result, len(outputs), errors, feedback)


def missing_modules(case: Case, runtime: str) -> list[str]:
    """What a case needs that a local runtime lacks (the image has the data stack)."""
    if runtime != "local":
        return []
    return [name for name in case.needs if importlib.util.find_spec(name) is None]


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} = {100 * part / whole:.0f}%" if whole else "n/a"


async def _main(runtime: str, only: tuple[str, ...]) -> int:
    cases = [case for case in load_corpus() if not only or case.id in only]
    replayed = []
    for case in cases:
        if missing := missing_modules(case, runtime):
            click.echo(f"skip {case.source}/{case.id}: this host lacks {', '.join(missing)}")
            continue
        done = await replay(case, runtime)
        replayed.append(done)
        status = "ok  " if not done.problems else "DIFF"
        answer = done.result.answer if done.result.success else None
        click.echo(
            f"{status} {case.source}/{case.id}: finish={done.result.finish} "
            f"answer={answer!r:.40} blocks {done.blocks - done.block_errors}/{done.blocks}"
        )
        for problem in done.problems:
            click.echo(f"       {problem}")
    for kind in ("recorded", "hand-written", None):
        group = [done for done in replayed if kind is None or done.case.kind == kind]
        if not group:
            continue
        blocks = sum(done.blocks for done in group)
        ran = blocks - sum(done.block_errors for done in group)
        answerable = [done for done in group if done.case.answered_originally]
        answered = sum(done.result.success for done in answerable)
        click.echo(
            f"{kind or 'all'}: blocks that run {_share(ran, blocks)} (target 90%); "
            f"runs that reach an answer {_share(answered, len(answerable))} (target 80%)"
        )
    return 1 if any(done.problems for done in replayed) else 0


@click.command()
@click.option("--runtime", default="container", show_default=True, help="container or local")
@click.option("--case", "only", multiple=True, help="Replay only these case ids.")
def main(runtime: str, only: tuple[str, ...]) -> None:
    raise SystemExit(asyncio.run(_main(runtime, only)))


if __name__ == "__main__":
    main()
