"""Option defaults from RLM_* variables and a config file: flags > env > file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import LOCAL, invoke, repl
from tests.fakes.model_server import FakeModelServer


@pytest.fixture
def cats(tmp_path: Path) -> Path:
    path = tmp_path / "cats.txt"
    path.write_text("cat dog cat")
    return path


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default config file, in a config home of the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "config" / "rlm" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def asked_model(server: FakeModelServer) -> str:
    return str(server.requests[0].json["model"])


def answer(request: dict[str, object]) -> str:
    return repl("FINAL('done')")


def run(args: list[str], cats: Path) -> None:
    result = invoke([*args, "--context-file", str(cats), "--query", "q", "--quiet"])
    assert (result.exit_code, result.stdout) == (0, "done\n"), result.stderr


def test_flags_beat_variables_beat_the_file_beats_defaults(
    openai_server: FakeModelServer,
    cats: Path,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    openai_server.handler = answer
    monkeypatch.delenv("RLM_BACKEND", raising=False)
    config_file.write_text('backend = "openai"\nmodel = "from-file"\nmax-depth = 1\n')
    run(["--runtime", "local"], cats)  # the file chose the backend: no --backend given
    assert asked_model(openai_server) == "from-file"
    openai_server.requests.clear()
    monkeypatch.setenv("RLM_MODEL", "from-env")
    run(["--runtime", "local"], cats)
    assert asked_model(openai_server) == "from-env"
    openai_server.requests.clear()
    run(["--runtime", "local", "--model", "from-flag"], cats)
    assert asked_model(openai_server) == "from-flag"


@pytest.mark.container  # doctor checks the engine
def test_a_config_path_and_shared_keys_reach_subcommands(
    openai_server: FakeModelServer, tmp_path: Path, config_file: Path
) -> None:
    chosen = tmp_path / "team.toml"
    chosen.write_text('backend = "openrouter"\n')
    config_file.write_text('backend = "huggingface"\n')
    result = invoke(["--config", str(chosen), "doctor"])
    assert f"✔ config       file {chosen}; set: backend='openrouter' (file)" in result.stdout
    assert "OPENROUTER_API_KEY" in result.stdout  # doctor checked the file's backend
    result = invoke(["doctor"])
    assert "HF_TOKEN" in result.stdout


@pytest.mark.container  # doctor checks the engine
def test_variables_are_defaults_not_a_run(
    openai_server: FakeModelServer, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_QUERY", "q")
    monkeypatch.setenv("RLM_MAX_DEPTH", "2")
    shown = invoke([])
    assert (shown.exit_code, shown.stdout.startswith("Usage: ")) == (0, True)
    # A subcommand runs although run options have values from the environment.
    doctor = invoke(["doctor"])
    assert "run options go without a subcommand" not in doctor.stderr
    assert "max_depth=2 (RLM_MAX_DEPTH)" in doctor.stdout
    assert "query='q' (RLM_QUERY)" in doctor.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file {path} does not exist"),
        ("backend = ", "config file {path} is not valid TOML"),
        ('backend = "nope"', "Invalid value for '--backend'"),
    ],
)
def test_a_bad_config_is_a_usage_error(
    tmp_path: Path, content: str | None, message: str, cats: Path
) -> None:
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    result = invoke(
        ["--config", str(path), *LOCAL[2:], "--context-file", str(cats), "--query", "q"]
    )
    assert result.exit_code == 2
    assert message.format(path=path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
