"""Pytest fixtures over the fakes; import them into a conftest.py to use them:

from tests.fakes.fixtures import model_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.model_server import FakeModelServer


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    """A running fake model endpoint with nothing scripted yet."""
    with FakeModelServer() as server:
        yield server
