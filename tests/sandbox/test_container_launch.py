"""Starting a container through docker-py's public API, and cleaning up a failed start."""

from __future__ import annotations

import os
import secrets

import docker.errors
import pytest

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


def test_the_user_namespace_mode_reaches_the_engine() -> None:
    engine = get_engine()
    if not (engine.is_podman and ROOTLESS):
        pytest.skip("keep-id is rootless Podman's")
    request = ContainerRequest(
        image=default_image(),
        command=["sleep", "30"],
        user="1000:1000",
        host={"network_mode": "none"},
        userns_mode="keep-id",
    )
    container = run_container(engine, request)
    try:
        assert container.attrs["HostConfig"]["UsernsMode"].startswith("keep-id")
    finally:
        container.remove(force=True)
