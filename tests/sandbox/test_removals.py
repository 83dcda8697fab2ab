"""Removals off the caller's path: retried when Podman refuses, given up when it hangs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import pytest
import requests

from rlm.sandbox import removals
from rlm.sandbox.rundir import RunDir

BUSY = docker.errors.APIError("unlinkat .../userdata/shm: device or resource busy")


@dataclass
class FakeContainer:
    """Raises the given errors on its first removals, then is removed."""

    errors: list[Exception] = field(default_factory=list)
    attempts: int = 0
    short_id: str = "c0ffee"

    def remove(self, force: bool) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)


@dataclass
class FakeContainers:
    """The engine's listing: the containers labelled with a run directory."""

    labelled: list[FakeContainer] = field(default_factory=list)

    def list(self, **filters: object) -> list[FakeContainer]:
        return self.labelled


@dataclass
class FakeClient:
    containers: FakeContainers = field(default_factory=FakeContainers)


@dataclass
class FakeEngine:
    changes: threading.Lock = field(default_factory=threading.Lock)
    client: FakeClient = field(default_factory=FakeClient)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(removals, "RETRY_DELAYS", (0.0, 0.0))
    monkeypatch.setattr(removals, "_answers", removals._EngineState())
    monkeypatch.setattr(removals, "get_engine", FakeEngine)


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    made = RunDir(tmp_path / "r1-test")
    made.path.mkdir()
    return made


def test_a_refused_removal_is_retried_then_the_run_dir_goes(run_dir: RunDir) -> None:
    container = FakeContainer([BUSY, BUSY])
    removals._remove_now(container, run_dir, engine=True)
    assert container.attempts == 3
    assert not run_dir.path.exists()


def test_a_container_that_stays_keeps_its_run_dir_for_the_reaper(
    run_dir: RunDir,
) -> None:
    container = FakeContainer([BUSY, BUSY, BUSY])
    removals._remove_now(container, run_dir, engine=True)
    assert container.attempts == 3
    assert run_dir.path.exists()  # the reaper finds the container by its run directory


def test_an_engine_that_does_not_answer_is_not_asked_again() -> None:
    hanging = FakeContainer([requests.exceptions.ReadTimeout("read timed out")])
    assert removals.remove_container(hanging) is False
    later = FakeContainer()
    assert removals.remove_container(later) is False
    assert (hanging.attempts, later.attempts) == (1, 0)


def test_a_container_the_sandbox_never_learnt_of_goes_by_its_label(
    run_dir: RunDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine()
    stray = FakeContainer()
    engine.client.containers.labelled.append(stray)
    monkeypatch.setattr(removals, "get_engine", lambda: engine)
    removals._remove_now(None, run_dir, engine=True)
    assert stray.attempts == 1
    assert not run_dir.path.exists()


def test_a_container_already_gone_counts_as_removed() -> None:
    assert removals.remove_container(FakeContainer([docker.errors.NotFound("gone")]))


async def test_a_sandbox_that_ran_on_no_engine_never_asks_one(
    run_dir: RunDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local sandbox closed in the background: its run directory goes, and no engine is
    looked for (on a machine without one that would fail, and start a Podman service on
    one that has it)."""

    def no_engine() -> FakeEngine:
        raise AssertionError("the engine was asked")

    monkeypatch.setattr(removals, "get_engine", no_engine)
    removals.remove_later(None, run_dir, engine=False)
    await removals.drain()
    assert not run_dir.path.exists()


async def test_a_background_removal_that_fails_says_so(
    run_dir: RunDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody awaits a background removal: its failure is logged, not lost."""

    def broken() -> FakeEngine:
        raise RuntimeError("engine connection lost")

    monkeypatch.setattr(removals, "get_engine", broken)
    removals.remove_later(None, run_dir, engine=True)
    assert removals.wait()
    assert "a background removal failed: RuntimeError('engine connection lost')" in caplog.text
    assert run_dir.path.exists()  # the reaper or the next sweep still finds it by this
