"""Fixtures of the batch tests: a real two-node Ray cluster on loopback (head at
127.0.0.2, a second node at 127.0.0.3, two sandboxes each), and the fake model server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.fixtures import model_server  # noqa: F401
from tests.fakes.model_server import FakeModelServer

SANDBOXES_PER_NODE = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    pytest.importorskip("ray", reason="needs the Ray extra: pip install 'rlm[ray]'")
    from rlm.batch.loopback import LoopbackCluster

    cluster = LoopbackCluster.start(sandboxes=SANDBOXES_PER_NODE)
    saved = {name: os.environ.get(name) for name in cluster.env if name != "HOME"}
    # This process becomes a Ray driver: it too must report nothing.
    os.environ.update({name: cluster.env[name] for name in saved})
    try:
        cluster.add_node(sandboxes=SANDBOXES_PER_NODE)
        yield cluster
    finally:
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def openai_server(
    model_server: FakeModelServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> FakeModelServer:
    """The fake server as the openai preset's endpoint, with a key set, in this (the
    driver's) environment only: the nodes started without them."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RLM_OPENAI_BASE_URL", model_server.openai_url)
    return model_server
