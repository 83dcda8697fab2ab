"""`rlm --help` stays fast: it lists the subcommands without importing them, nor the
orchestrator, the sandbox, Jupyter or the SDKs."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from rlm.cli import SUBCOMMANDS, cli

HEAVY = ("rlm.orchestrator", "rlm.sandbox", "jupyter_client", "docker", "anthropic", "openai")

LOADED_BY_HELP = """
import sys
from rlm.cli import cli
try:
    cli.main(["--help"], prog_name="rlm")
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_help_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADED_BY_HELP], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout
    loaded = done.stderr.split()
    assert [name for name in loaded if name.startswith(HEAVY)] == []


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_listed_summaries_are_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert command.get_short_help_str(limit=1000) == SUBCOMMANDS[name].summary
