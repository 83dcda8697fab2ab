"""Fixtures of the orchestrator tests: the fake model server, and a trace path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.fixtures import model_server  # noqa: F401


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    return tmp_path / "trace.jsonl"
