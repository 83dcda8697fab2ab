"""Shared fixtures: real sandboxes (container and local runtimes) and a recording handler,
and the guard that keeps `-m "not container"` free of any container engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from rlm.sandbox import engine, removals
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


@pytest.fixture(params=[pytest.param("container", marks=pytest.mark.container), "local"])
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A fixture cannot carry a mark, so tests that ask for a container sandbox get it here.
    for item in items:
        if "container_sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.container)


@pytest.fixture(autouse=True)
def _no_engine_without_the_container_mark(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail any test that reaches a container engine without `@pytest.mark.container`.

    Unmarked tests see no engine at all, as on a machine without one: in this process the
    cached engine is hidden and finding one fails the test, and subprocesses (the CLI) get a
    DOCKER_HOST that does not answer.
    """
    if request.node.get_closest_marker("container"):
        return
    # The engine stays hidden from the whole process: the previous test's background
    # removals, still running, would fail (their containers left behind) without it.
    assert removals.wait(), "background container removals of earlier tests are stuck"

    def refuse() -> engine.Engine:
        pytest.fail(f"{request.node.nodeid} reaches a container engine: mark it container")

    monkeypatch.setattr(engine, "_engine", None)
    monkeypatch.setattr(engine, "_discover", refuse)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/unmarked-test-has-no-engine.sock")
