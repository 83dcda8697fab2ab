"""Running `rlm eval` in-process and reading what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from rlm.cli import RLMGroup
from rlm.cli.eval import eval_command

# The rlm group's error handling around our command alone, leaving the real group as is.
rlm = RLMGroup("rlm", commands=[eval_command])

FAST = ("--backend", "openai", "--runtime", "local", "--concurrency", "2")
"""The fake endpoint, and kernels as local processes (container runs are marked)."""


def run_eval(*args: str) -> Result:
    return CliRunner().invoke(rlm, ["eval", *args])


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
