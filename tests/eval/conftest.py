"""Fixtures of the evaluation tests: the fake model server behind the openai preset, and
large tasks built once."""

from __future__ import annotations

import pytest

from rlm.eval.generators import build
from rlm.eval.tasks import Task, TaskSpec
from tests.fakes.fixtures import model_server  # noqa: F401
from tests.fakes.model_server import FakeModelServer


@pytest.fixture(scope="session")
def huge_sniah() -> Task:
    """A 2^24-token (64 MB) S-NIAH task; building it is itself under test for speed."""
    return build(TaskSpec("sniah", 1 << 24, 4, 0))


@pytest.fixture
def openai_server(
    model_server: FakeModelServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> FakeModelServer:
    """The fake server as the openai preset's endpoint, with a key set; nothing scripted."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RLM_OPENAI_BASE_URL", model_server.openai_url)
    return model_server
