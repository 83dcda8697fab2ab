"""Starting a container through docker-py's public API, and cleaning up a failed start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import docker.errors
import pytest
from docker.types import Mount

from rlm.sandbox.container_launch import ContainerRequest, default_image, run_container
from rlm.sandbox.engine import get_engine

pytestmark = [pytest.mark.container, pytest.mark.rootless]
ROOTLESS = os.getuid() != 0


def test_a_container_whose_start_fails_is_removed() -> None:
    engine = get_engine()
    label = f"rlm.test-{secrets.token_hex(4)}"
    request = ContainerRequest(
        image=default_image(),
        command=["/no/such/program"],
        user="1000:1000",
        labels={label: "1"},
        host={"network_mode": "none"},
        userns_mode="keep-id" if engine.is_podman and ROOTLESS else None,
    )
    # Created, then refused by the runtime when it starts.
    with pytest.raises(docker.errors.APIError, match="start"):
        run_container(engine, request)
    assert engine.client.containers.list(all=True, filters={"label": label}) == []


def test_the_user_namespace_mode_reaches_the_engine(tmp_path: Path) -> None:
    """keep-id is what makes files the kernel creates (its sockets) ours: without it they
    belong to a subordinate uid. Podman's inspect does not echo the mode back, so the test
    checks the effect: a file made inside the container belongs to our uid on the host."""
    engine = get_engine()
    if not (engine.is_podman and ROOTLESS):
        pytest.skip("keep-id is rootless Podman's")
    request = ContainerRequest(
        image=default_image(),
        command=["touch", "/out/made-inside"],
        user=f"{os.getuid()}:{os.getgid()}",
        host={"network_mode": "none", "mounts": [Mount("/out", str(tmp_path), type="bind")]},
        userns_mode="keep-id",
    )
    container = run_container(engine, request)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert (tmp_path / "made-inside").stat().st_uid == os.getuid()
    finally:
        container.remove(force=True)
