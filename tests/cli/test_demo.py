"""demo.py: the sample report by default, through the same run as the rlm command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.model_server import FakeModelServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.container
def test_demo_queries_the_sample_report(openai_server: FakeModelServer) -> None:
    env = {**os.environ, "RLM_OPENAI_BASE_URL": openai_server.openai_url}
    done = subprocess.run(
        [sys.executable, str(ROOT / "demo.py"), "--backend", "openai"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    document = (ROOT / "sample_data" / "large_document.txt").read_text()
    assert (done.returncode, done.stdout) == (0, f"{document.count('cat')} cats\n"), done.stderr
    samples = json.loads((ROOT / "sample_data" / "expected_answers.json").read_text())
    first_turn = openai_server.requests[0].json["messages"][-1]["content"]
    assert samples["samples"][0]["query"] in first_turn


def test_sample_data_is_what_the_script_makes(tmp_path: Path) -> None:
    script = (ROOT / "scripts" / "make_sample_data.py").read_text()
    # Regenerate into a scratch copy of the layout so the committed files stay untouched.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "make_sample_data.py").write_text(script)
    subprocess.run([sys.executable, str(tmp_path / "scripts" / "make_sample_data.py")], check=True)
    for name in ("large_document.txt", "expected_answers.json"):
        made = (tmp_path / "sample_data" / name).read_bytes()
        assert made == (ROOT / "sample_data" / name).read_bytes(), name
    assert len((tmp_path / "sample_data" / "large_document.txt").read_bytes()) > 2**20
