"""Fixtures of the evaluation tests: the fake model server, and large tasks built once."""

from __future__ import annotations

import pytest

from rlm.eval.generators import build
from rlm.eval.tasks import Task, TaskSpec
from tests.fakes.fixtures import model_server  # noqa: F401


@pytest.fixture(scope="session")
def huge_sniah() -> Task:
    """A 2^24-token (64 MB) S-NIAH task; building it is itself under test for speed."""
    return build(TaskSpec("sniah", 1 << 24, 4, 0))
