"""Bad input and a bad setup: one clear line on stderr, exit 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm.cli.context import EAGER_CHECK_BYTES
from tests.cli.conftest import LOCAL, invoke
from tests.fakes.model_server import FakeModelServer, Reply


@pytest.fixture
def cats(tmp_path: Path) -> Path:
    path = tmp_path / "cats.txt"
    path.write_text("cat dog cat")
    return path


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def fails_with(args: list[str], stdin: str | bytes | None = None) -> str:
    """The one stderr line of a command that must exit 2 and print nothing on stdout."""
    result = invoke(args, stdin)
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    return one_line(result.stderr)


def test_missing_key_names_the_variable(cats: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    line = fails_with(["--backend", "openrouter", "--context-file", str(cats), "--query", "q"])
    assert "OPENROUTER_API_KEY" in line


def test_unreachable_endpoint_names_the_url(cats: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    args = [*LOCAL, "--base-url", url, "--context-file", str(cats), "--query", "q", "--quiet"]
    line = fails_with(args)
    assert url in line
    assert "cannot reach" in line


def test_a_rejected_key_names_the_variable(openai_server: FakeModelServer, cats: Path) -> None:
    openai_server.push(Reply(status=401, text="invalid key"))
    line = fails_with([*LOCAL, "--context-file", str(cats), "--query", "q", "--quiet"])
    assert "rejected the API key" in line
    assert line.endswith("set OPENAI_API_KEY to a valid key")
    assert "api_key" not in line  # an argument of the Python API, not of the command


def test_a_missing_key_is_phrased_for_the_command(
    cats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    line = fails_with([*LOCAL, "--context-file", str(cats), "--query", "q"])
    assert line == "rlm: error: OpenAI needs an API key: set OPENAI_API_KEY"


def test_a_vllm_key_reaches_the_server(
    openai_server: FakeModelServer, cats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key")
    args = ["--backend", "vllm", "--model", "m", "--base-url", openai_server.openai_url]
    result = invoke(
        [
            *args,
            "--runtime",
            "local",
            "--max-depth",
            "1",
            "--context-file",
            str(cats),
            "--query",
            "Cats?",
            "--quiet",
        ]
    )
    assert (result.exit_code, result.stdout) == (0, "2 cats\n"), result.stderr
    assert openai_server.requests[0].headers["authorization"] == "Bearer vllm-key"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--context-file", "{missing}", "--query", "q"], "does not exist"),
        (["--context-file", "{cats}", "--query", "   "], "the query is empty"),
        (["--context-file", "{cats}"], "either --query or --query-file"),
        (["--context-file", "{cats}", "--query", "q", "--query-file", "{cats}"], "either"),
        (["--query", "q"], "no context: give --context-file"),
        (["--context-file", "-", "--context-file", "-", "--query", "q"], "only once"),
        (["--context-file", "{cats}", "--query", "q", "--encoding", "klingon"], "unknown encoding"),
        (["--context-file", "{cats}", "--query", "q", "--verbose", "--quiet"], "exclude"),
        (["--context-file", "{cats}", "--query", "q", "--max-depth", "-1"], "--max-depth"),
        (["--backend", "nope", "--context-file", "{cats}", "--query", "q"], "'nope' is not one"),
        (["--backend", "vllm", "--context-file", "{cats}", "--query", "q"], "name the model"),
        (["--query", "q", "doctor"], "run options go without a subcommand"),
        # Conflicting or empty input is refused, not silently accepted.
        (["--context-file", "{cats}", "--query", "q", "--warm-pool", "2"], "--max-depth 2 or more"),
        (
            ["--context-file", "{cats}", "--query", "q", "--image", "x"],
            "no use with --runtime local",
        ),
        (
            [
                "--context-file",
                "{cats}",
                "--query",
                "q",
                "--max-depth",
                "0",
                "--recursive-model",
                "m",
            ],
            "--recursive-model has no use with --max-depth 0",
        ),
        (["--context-file", "{blank}", "--query", "q"], "the context is empty"),
        (
            ["--context-file", "{cats}", "--query-file", "{huge}"],
            "give long text with --context-file",
        ),
        (
            ["--context-file", "{cats}", "--query", "q", "--base-url", "not-a-url"],
            "not an http(s) URL",
        ),
        (
            ["--context-file", "{cats}", "--query", "q", "--trace", "{cats}/t.jsonl"],
            "cannot write --trace",
        ),
    ],
)
def test_bad_arguments(
    openai_server: FakeModelServer, cats: Path, args: list[str], expected: str
) -> None:
    (cats.parent / "blank.txt").write_text("  \n\n")
    (cats.parent / "huge.txt").write_text("Which one? " * 100_000)
    paths = {
        "cats": str(cats),
        "missing": str(cats.with_name("missing.txt")),
        "blank": str(cats.with_name("blank.txt")),
        "huge": str(cats.with_name("huge.txt")),
    }
    line = fails_with([*LOCAL, *[arg.format(**paths) for arg in args]])
    assert expected in line
    assert not openai_server.requests


def test_unreadable_context_file(
    openai_server: FakeModelServer, cats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root reads any file whatever its mode, so the refusal is simulated.
    opener = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == cats:
            raise PermissionError(13, "Permission denied", str(self))
        return opener(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    line = fails_with([*LOCAL, "--context-file", str(cats), "--query", "q"])
    assert line.endswith(f"context file {cats} is not readable (permission denied)")


def test_binary_context(openai_server: FakeModelServer, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"PK\x03\x04\0\0binary")
    line = fails_with([*LOCAL, "--context-file", str(blob), "--query", "q"])
    assert f"{blob} looks binary" in line


def test_non_utf8_context_needs_its_encoding(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café cat".encode("latin-1"))
    args = [*LOCAL, "--context-file", str(latin), "--query", "q"]
    line = fails_with(args)
    assert "is not utf-8 text (byte 0xe9 at offset 3)" in line
    assert "--encoding" in line

    result = invoke([*args, "--encoding", "latin-1"])
    assert (result.exit_code, result.stdout) == (0, "1 cats\n")


def test_a_large_non_utf8_context_fails_as_the_run_starts(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    # Past the first megabyte, the sandbox checks the file while its kernel starts.
    big = tmp_path / "big.txt"
    at = EAGER_CHECK_BYTES + 5
    big.write_bytes(b"x" * at + "café cat".encode("latin-1"))
    line = fails_with([*LOCAL, "--context-file", str(big), "--query", "q"])
    assert f"is not utf-8 text (byte 0xe9 at offset {at + 3})" in line
    assert "--encoding" in line
    assert openai_server.requests == []


def test_non_utf8_stdin(openai_server: FakeModelServer) -> None:
    line = fails_with([*LOCAL, "--context-file", "-", "--query", "q"], stdin=b"\xff\xfe x")
    assert "standard input is not utf-8 text" in line


@pytest.mark.container
def test_missing_image(openai_server: FakeModelServer, cats: Path) -> None:
    image = "localhost/rlm-kernel:no-such-tag"
    args = ["--backend", "openai", "--image", image, "--context-file", str(cats), "--query", "q"]
    line = fails_with(args)
    assert f"kernel image {image} not found" in line
    assert "rlm image build" in line


def test_missing_engine(cats: Path) -> None:
    # A subprocess: the engine connection is cached for the life of a process.
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/engine.sock", "OPENAI_API_KEY": "k"}
    args = ["--backend", "openai", "--context-file", str(cats), "--query", "q"]
    done = subprocess.run(
        [sys.executable, "-m", "rlm.cli", *args], env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (2, "")
    line = one_line(done.stderr)
    assert "DOCKER_HOST=unix:///nonexistent/engine.sock does not answer" in line
    assert "rlm doctor" in line
