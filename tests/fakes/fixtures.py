"""Pytest fixtures over the fakes; import them into a conftest.py to use them:

from tests.fakes.fixtures import model_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fakellm_server import FakeLLM
from tests.fakes.model_server import FakeModelServer


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    """A running fake model endpoint with nothing scripted yet."""
    with FakeModelServer() as server:
        yield server


@pytest.fixture
def start_fakellm(tmp_path: Path) -> Iterator[Callable[[list[dict[str, Any]]], FakeLLM]]:
    """`start(rules)` runs fakellm (the third-party mock server) with those rules; every
    server started is stopped after the test."""
    pytest.importorskip("fakellm", reason="needs the test extra: pip install -e '.[test]'")
    started: list[FakeLLM] = []

    def start(rules: list[dict[str, Any]]) -> FakeLLM:
        server = FakeLLM.start(rules, tmp_path / f"fakellm-{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
