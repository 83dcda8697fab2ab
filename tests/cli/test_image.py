"""`rlm image build`: the command line it runs, its failures, and one real build."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import docker.errors
import pytest

from rlm.cli.errors import UsageProblem
from rlm.cli.image import build_command, stage_context
from rlm.kernel_image import runtime_hash
from rlm.sandbox.engine import get_engine
from tests.cli.conftest import invoke

CA = Path("/etc/ssl/certs/ca-certificates.crt")


def test_podman_command_mounts_the_host_ca_bundle(tmp_path: Path) -> None:
    command = build_command(
        "/usr/bin/podman",
        tag="localhost/k:1",
        base_image="base:1",
        runtime_hash="abc",
        context_dir=tmp_path,
        ca_bundle=CA,
    )
    assert command == [
        "/usr/bin/podman", "build", "-f", f"{tmp_path}/Containerfile", "-t", "localhost/k:1",
        "--build-arg", "BASE_IMAGE=base:1", "--build-arg", "RUNTIME_HASH=abc",
        "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "--build-arg", f"PIP_CERT={CA}",
        str(tmp_path),
    ]  # fmt: skip


def test_docker_command_has_no_build_mount(tmp_path: Path) -> None:
    command = build_command(
        "docker", tag="t", base_image="b", runtime_hash="h", context_dir=tmp_path, ca_bundle=CA
    )
    assert "-v" not in command
    assert not any(arg.startswith("PIP_CERT") for arg in command)
    assert command[-1] == str(tmp_path)


def test_extra_packages_become_one_build_arg(tmp_path: Path) -> None:
    command = build_command(
        "docker", tag="t", base_image="b", runtime_hash="h", context_dir=tmp_path,
        extra_packages="scipy lxml>=5",
    )  # fmt: skip
    assert "EXTRA_PACKAGES=scipy lxml>=5" in command
    assert command[command.index("EXTRA_PACKAGES=scipy lxml>=5") - 1] == "--build-arg"
    plain = build_command("docker", tag="t", base_image="b", runtime_hash="h", context_dir=tmp_path)
    assert not any(arg.startswith("EXTRA_PACKAGES") for arg in plain)


def test_the_build_context_holds_only_the_containerfile_and_runtime(tmp_path: Path) -> None:
    staged = stage_context(tmp_path)
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files[0] == "Containerfile"
    assert files[1:] and all(
        f.startswith("rlm/kernel_image/rlm_kernel/") and f.endswith(".py") for f in files[1:]
    )


def test_staging_without_a_checkout_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem, match="no Containerfile"):
        stage_context(tmp_path / "out", source_root=tmp_path)


def test_a_missing_engine_is_a_usage_error() -> None:
    result = invoke(["image", "build", "--engine", "no-such-engine"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "rlm image build: error: no-such-engine not found: install podman "
        "(apt-get install podman runc uidmap)"
    )


@pytest.mark.container
def test_a_failed_build_is_a_setup_error_with_the_engines_reason() -> None:
    result = invoke(["image", "build", "--base-image", "NOT A VALID/REF", "--tag", "rlm-x:y"])
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()
    assert "the build of rlm-x:y failed" in last[-1]
    assert result.stdout == ""


@pytest.mark.container
def test_a_real_build_labels_the_image_with_the_runtime_hash() -> None:
    tag = f"localhost/rlm-kernel-clitest:{uuid.uuid4().hex[:8]}"
    images = get_engine().client.images
    try:
        # No --base-image: the local base (there is no registry here) is preferred.
        result = invoke(["image", "build", "--tag", tag])
        assert (result.exit_code, result.stdout) == (0, tag + "\n"), result.stderr
        assert "rlm: base image localhost/rlm-base:bookworm\n" in result.stderr
        assert images.get(tag).labels["rlm.runtime-hash"] == runtime_hash()
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            images.remove(tag)
