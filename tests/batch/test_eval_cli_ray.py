"""`rlm eval --executor ray` end to end on the loopback cluster, and its setup problems:
one line, exit 2, no model called."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rlm.batch.loopback import LoopbackCluster
from rlm.cli import cli
from tests.eval.policies import AnswersThenHangs, needle_search
from tests.fakes.model_server import FakeModelServer, Reply

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
SNIAH = ("--backend", "openai", "--task", "sniah", "--lengths", "2^13", "-n", "4")


def run_eval(*args: str) -> Result:
    return CliRunner().invoke(cli, ["eval", *args])


def test_eval_on_the_cluster_writes_one_record_per_task(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "sniah.jsonl"
    ray = ("--executor", "ray", "--ray-address", ray_cluster.address, "--runtime", "local")
    # The workers write the traces: the loopback nodes share this machine's storage.
    result = run_eval(*ray, *SNIAH, "--out", str(out), "--traces", str(tmp_path / "traces"))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(record["id"] for record in records) == [f"sniah-8192-{i}" for i in range(4)]
    assert [record["score"] for record in records] == [1.0] * 4
    for record in records:
        assert record["trace"] == f"traces/{record['id']}.jsonl"
        assert '"type": "end"' in (tmp_path / record["trace"]).read_text()
    assert "| sniah | 8K | 4 | 100.0% |" in result.stdout


def test_baseline_on_the_cluster_reads_only_its_window(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "base.jsonl"
    ray = ("--executor", "ray", "--ray-address", ray_cluster.address)
    result = run_eval(*ray, *SNIAH, "--baseline", "--window-tokens", "4096", "--out", str(out))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(record["mode"], record["window_tokens"]) for record in records] == [
        ("baseline", 4096)
    ] * 4
    prompts = [request.json["messages"][-1]["content"] for request in openai_server.requests]
    assert len(prompts) == 4
    assert all(len(prompt) <= 4096 * 4 for prompt in prompts)


def test_a_key_rejected_on_the_workers_stops_the_run_with_nothing_recorded(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = lambda request: Reply(status=401, text="invalid api key")
    out = tmp_path / "r.jsonl"
    ray = ("--executor", "ray", "--ray-address", ray_cluster.address, "--runtime", "local")
    result = run_eval(*ray, *SNIAH, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith("rlm eval: error: AuthenticationError: ")
    assert not out.exists()


def assert_stopped_before_any_model_call(
    result: Result, problem: str, server: FakeModelServer
) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith(problem)
    assert result.output.count("\n") == 1
    assert server.requests == []


def test_an_unreachable_cluster_is_one_line(openai_server: FakeModelServer, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    ray = ("--executor", "ray", "--ray-address", "127.0.0.9:1", "--runtime", "local")
    result = run_eval(*ray, *SNIAH, "--out", str(tmp_path / "out.jsonl"))
    problem = "rlm eval: error: cannot reach the Ray cluster at 127.0.0.9:1: "
    assert_stopped_before_any_model_call(result, problem, openai_server)


@pytest.mark.container
def test_a_node_without_the_image_is_named(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    ray = ("--executor", "ray", "--ray-address", ray_cluster.address)
    image = ("--image", "localhost/rlm-kernel:absent")
    result = run_eval(*ray, *image, *SNIAH, "--out", str(tmp_path / "out.jsonl"))
    problem = "rlm eval: error: node 127.0.0.2: kernel image localhost/rlm-kernel:absent not found"
    assert_stopped_before_any_model_call(result, problem, openai_server)


def test_without_ray_the_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    result = run_eval("--executor", "ray", *SNIAH, "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2, result.output
    assert result.output == (
        "rlm eval: error: the Ray executor needs Ray: pip install 'rlm[ray]'\n"
    )


def test_ray_address_without_the_ray_executor_is_refused(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    ray = ("--ray-address", "h:1", "--runtime", "local")
    result = run_eval(*ray, *SNIAH, "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "--ray-address needs --executor ray" in result.output


def test_a_driver_stopped_mid_run_resumes_on_the_cluster(
    ray_cluster: LoopbackCluster, openai_server: FakeModelServer, tmp_path: Path
) -> None:
    policy = AnswersThenHangs(2)
    openai_server.handler = policy
    out = tmp_path / "r.jsonl"
    command = [sys.executable, "-m", "rlm.cli", "eval", "--executor", "ray", "--ray-address",
               ray_cluster.address, "--runtime", "local", "--concurrency", "1", *SNIAH,
               "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # at most 120 s
        if policy.calls >= 3:
            break
        time.sleep(0.1)
    assert policy.calls == 3, "the third task never started"
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM; 2 result(s) kept" in stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "sniah-8192-0", "sniah-8192-1",
    ]  # fmt: skip

    openai_server.handler = needle_search
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "4 task(s), 2 already in" in rerun.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["id"] for record in records] == [f"sniah-8192-{i}" for i in range(4)]
    assert [record["score"] for record in records] == [1.0] * 4
