"""Scripted models that write real code, and recorders for what the orchestrator did."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm.backends import Backend, Completion, Message
from rlm.orchestrator import SandboxFactory
from rlm.orchestrator.prompts import CHILD_QUERY
from rlm.sandbox import LLMHandler, Sandbox


def repl(code: str, prose: str = "Next step.") -> str:
    """A model reply running `code`."""
    return f"{prose}\n```repl\n{code}\n```"


def last_user(messages: list[Message]) -> str:
    return messages[-1]["content"]


def is_child(messages: list[Message]) -> bool:
    """True for the loop of a child run (its first turn carries the child query)."""
    return CHILD_QUERY in messages[0]["content"]


def is_sub_prompt(messages: list[Message]) -> bool:
    """True for a plain sub-call: one user message and no loop around it."""
    return len(messages) == 1 and not messages[0]["content"].startswith("Query:")


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@dataclass
class RecordingFactory(SandboxFactory):
    """The default factory, noting which depths acquired and released which sandbox."""

    acquired: list[tuple[int, Sandbox]] = field(default_factory=list)
    released: list[tuple[int, Sandbox]] = field(default_factory=list)
    container_ids: list[str | None] = field(default_factory=list)

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        sandbox = await super().acquire(context, llm_handler, depth)
        self.acquired.append((depth, sandbox))
        self.container_ids.append(sandbox.container_id)  # gone once the sandbox closes
        return sandbox

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        await super().release(sandbox, depth)
        self.released.append((depth, sandbox))


class RecordingBackend(Backend):
    """Passes calls to `inner` and keeps every (model asked for, completion) pair."""

    name = "recording"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.completions: list[tuple[str, Completion]] = []

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        completion = await self.inner.acomplete(
            messages, model, system=system, max_tokens=max_tokens
        )
        self.completions.append((model, completion))
        return completion
