"""Shared fixtures: real sandboxes (container and local runtimes) and a recording handler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from rlm.sandbox.callback import LLMRequest
from rlm.sandbox.sandbox import Sandbox


@dataclass
class RecordingHandler:
    """An llm_query handler that answers from a rule and records when each call ran."""

    delay: float = 0.0
    calls: list[tuple[LLMRequest, float, float]] = field(default_factory=list)

    async def __call__(self, request: LLMRequest) -> str:
        started = time.monotonic()
        if request.prompt.startswith("fail"):
            raise RuntimeError(f"model refused {request.prompt!r}")
        if self.delay:
            await asyncio.sleep(self.delay)
        self.calls.append((request, started, time.monotonic()))
        return f"answer to {request.prompt}"


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture(params=["container", "local"])
def runtime(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def sandbox(runtime: str, handler: RecordingHandler) -> AsyncIterator[Sandbox]:
    async with Sandbox("alpha beta gamma " * 100, llm_handler=handler, runtime=runtime) as box:
        yield box


@pytest.fixture
async def container_sandbox(handler: RecordingHandler) -> AsyncIterator[Sandbox]:
    async with Sandbox("alpha beta gamma " * 100, llm_handler=handler) as box:
        yield box
