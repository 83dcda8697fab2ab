"""Fixtures of the CLI tests: the fake model server behind the openai preset, a scripted
model that counts cats, and a runner that keeps stdout and stderr apart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rlm.cli import cli
from tests.fakes.fixtures import model_server  # noqa: F401
from tests.fakes.model_server import FakeModelServer, last_user_text


def repl(code: str) -> str:
    """A model reply running `code`."""
    return f"Next step.\n```repl\n{code}\n```"


def cat_counter(request: dict[str, Any]) -> str:
    """Counts 'cat' in CONTEXT with one llm_query on the way, then answers."""
    text = last_user_text(request)
    if text == "say ok":
        return "ok"
    if text.startswith("Query:"):
        return repl("n = CONTEXT.count('cat')\nnote = llm_query('say ok')\nprint(n, note)")
    return repl("FINAL(f'{n} cats')")


@pytest.fixture
def openai_server(
    model_server: FakeModelServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> FakeModelServer:
    """The fake server as the openai preset's endpoint, with a key set."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RLM_OPENAI_BASE_URL", model_server.openai_url)
    model_server.handler = cat_counter
    return model_server


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' option defaults are the built-in ones, whatever config file the user has."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


def invoke(args: Sequence[str], stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


LOCAL = ("--backend", "openai", "--runtime", "local", "--max-depth", "1")
"""A fast run: no container, llm_query as a plain model call."""
