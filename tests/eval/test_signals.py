"""A run stopped by a signal keeps what finished, removes its sandboxes, and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.eval.helpers import FAST, records
from tests.eval.policies import AnswersThenHangs, needle_search
from tests.fakes.model_server import FakeModelServer

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_mid_run_then_rerun_runs_only_the_rest(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    policy = AnswersThenHangs(2)
    openai_server.handler = policy
    out = tmp_path / "r.jsonl"
    args = [*FAST, "--concurrency", "1", "--task", "sniah", "--lengths", "2^13", "-n", "4",
            "--out", str(out)]  # fmt: skip
    run_base = tmp_path / "sandboxes"
    run_base.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RLM_RUN_BASE": str(run_base)}
    process = subprocess.Popen(
        [sys.executable, "-m", "rlm.cli", "eval", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while policy.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert policy.calls == 3, "the third task never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM; 2 result(s) kept" in stderr
    assert [r["id"] for r in records(out)] == ["sniah-8192-0", "sniah-8192-1"]
    assert list(run_base.iterdir()) == []  # the hanging task's sandbox was closed

    openai_server.handler = needle_search
    rerun = subprocess.run(
        [sys.executable, "-m", "rlm.cli", "eval", *args], env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "4 task(s), 2 already in" in rerun.stderr
    assert [r["id"] for r in records(out)] == [f"sniah-8192-{i}" for i in range(4)]
    assert [r["score"] for r in records(out)] == [1.0] * 4
