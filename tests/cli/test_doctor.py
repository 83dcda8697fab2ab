"""`rlm doctor`: every check, and the fix it prints for a problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm.cli import doctor
from rlm.sandbox.engine import get_engine
from rlm.sandbox.provisioner import default_image
from tests.cli.conftest import invoke
from tests.fakes.model_server import FakeModelServer

pytestmark = pytest.mark.container


@pytest.fixture
def image_hash() -> str:
    """The runtime hash the kernel image carries (its label); doctor must compute the same
    from this tree, so the image under test ($RLM_IMAGE) must be built from it."""
    return get_engine().require_image(default_image())["rlm.runtime-hash"]


def test_all_good(openai_server: FakeModelServer, image_hash: str) -> None:
    result = invoke(["doctor", "--backend", "openai"])
    assert result.exit_code == 0, result.stdout
    assert "✔ engine" in result.stdout
    assert f"built from the current runtime ({image_hash})" in result.stdout
    assert "✔ key          OPENAI_API_KEY is set" in result.stdout
    assert f"{openai_server.openai_url} answers" in result.stdout
    assert "✘" not in result.stdout


def test_missing_key_and_unreachable_endpoint(
    image_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = invoke(["doctor", "--backend", "huggingface", "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 1
    assert "✘ key          HF_TOKEN is not set" in result.stdout
    assert "fix: export HF_TOKEN=<your Hugging Face key>" in result.stdout
    assert "✘ endpoint     cannot reach http://127.0.0.1:9/v1" in result.stdout


def test_stale_image(openai_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "runtime_hash", lambda: "0123456789abcdef")
    result = invoke(["doctor", "--backend", "openai"])
    assert result.exit_code == 1
    assert "was built from another runtime" in result.stdout
    assert f"fix: rlm image build --tag {default_image()}" in result.stdout


def test_missing_image(openai_server: FakeModelServer) -> None:
    result = invoke(["doctor", "--backend", "openai", "--image", "localhost/rlm-kernel:nope"])
    assert result.exit_code == 1
    assert "✘ image        localhost/rlm-kernel:nope is not built" in result.stdout
    assert "fix: rlm image build --tag localhost/rlm-kernel:nope" in result.stdout


def test_missing_engine() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/engine.sock", "OPENAI_API_KEY": "k"}
    done = subprocess.run(
        [sys.executable, "-m", "rlm.cli", "doctor", "--backend", "ollama"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert (
        "✘ engine       DOCKER_HOST=unix:///nonexistent/engine.sock does not answer" in done.stdout
    )
    assert "fix: apt-get install podman runc uidmap" in done.stdout
    assert "- image" in done.stdout  # nothing to look in


def test_subid_entries(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\n1001:165536:65536\n")
    assert doctor.subid_check("alice", 1000, subuid, "uid").status == "ok"
    assert doctor.subid_check("bob", 1001, subuid, "uid").status == "ok"  # listed by uid
    missing = doctor.subid_check("carol", 1002, subuid, "uid")
    assert missing.status == "fail"
    assert missing.fix == "usermod --add-subuids 100000-165535 carol   (as root)"
    assert doctor.subid_check("alice", 1000, tmp_path / "absent", "gid").status == "fail"


def test_storage_driver() -> None:
    assert doctor.storage_check("overlay").status == "ok"
    vfs = doctor.storage_check("vfs")
    assert vfs.status == "warn"
    assert vfs.fix is not None and "fuse-overlayfs" in vfs.fix


def test_userns_checks_want_a_range_for_containers(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("containers:1000000000:1000000000\n")
    (tmp_path / "subgid").write_text("alice:100000:65536\n")
    uid, gid = doctor.userns_checks(tmp_path)
    assert uid.status == "ok"
    assert gid.status == "fail" and gid.fix is not None and "containers:" in gid.fix


def test_rootless_checks_only_for_other_users() -> None:
    assert [c.status for c in doctor.rootless_checks(None, uid=0)] == ["skip"]
    names = [c.name for c in doctor.rootless_checks(None, uid=os.getuid() or 65534)]
    assert names[:3] == ["subuid", "subgid", "uid mapping"]


def test_the_socket_fix_fits_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    done = subprocess.run(
        # A closed local port: the endpoint check fails at once, with no network.
        [sys.executable, "-m", "rlm", "doctor", "--base-url", "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if get_engine().service is None:
        pytest.skip("an engine socket answers here: there is nothing to fix")
    fix = next(
        line
        for line in done.stdout.splitlines()
        if "podman.socket" in line or ("podman system service --time=0 unix://" in line)
    )
    if Path("/run/systemd/system").is_dir():
        assert "systemctl" in fix
    else:
        assert "systemctl" not in done.stdout
        assert "no systemd here" in fix
