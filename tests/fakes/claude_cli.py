"""A stand-in for the `claude` command-line tool, written into a directory for PATH.

It prints a canned stdout, writes a canned stderr, exits with a canned code, and
records each invocation (argv, stdin and pid) as a JSON line in ``calls.jsonl`` beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_SCRIPT = """#!{python}
import json, os, pathlib, sys, time
here = pathlib.Path(__file__).parent
prompt = sys.stdin.read()
with open(here / "calls.jsonl", "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": prompt, "pid": os.getpid()}}) + "\\n")
time.sleep({sleep_s!r})
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.exit({exit_code!r})
"""


def install_fake_claude(
    directory: Path,
    *,
    stdout: str,
    stderr: str = "",
    exit_code: int = 0,
    sleep_s: float = 0.0,
    name: str = "claude",
) -> Path:
    """Write the fake executable as `directory/name` and return its path."""
    path = directory / name
    path.write_text(
        _SCRIPT.format(
            python=sys.executable,
            stdout=stdout,
            stderr=stderr,
            exit_code=exit_code,
            sleep_s=sleep_s,
        )
    )
    path.chmod(0o755)
    return path


def recorded_calls(directory: Path) -> list[dict[str, object]]:
    """The invocations of the fake installed in `directory`, oldest first."""
    log = directory / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def result_json(
    result: str = "the answer",
    *,
    is_error: bool = False,
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_read: int = 0,
    cache_write: int = 0,
    total_cost_usd: float | None = 0.01,
) -> str:
    """What ``claude -p --output-format json`` prints."""
    data: dict[str, object] = {
        "type": "result",
        "subtype": "error_during_execution" if is_error else "success",
        "is_error": is_error,
        "result": result,
        "session_id": "fake",
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }
    if total_cost_usd is not None:
        data["total_cost_usd"] = total_cost_usd
    return json.dumps(data)
