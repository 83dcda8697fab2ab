"""Running queries: the answer on stdout, progress on stderr, JSON, contexts, trace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlm.cli.context import EAGER_CHECK_BYTES
from tests.cli.conftest import LOCAL, invoke, repl
from tests.fakes.model_server import FakeModelServer, Reply, last_user_text


@pytest.fixture
def cats(tmp_path: Path) -> Path:
    path = tmp_path / "cats.txt"
    path.write_text("cat dog cat bird cat")
    return path


@pytest.mark.container
def test_answer_on_stdout_from_a_container(openai_server: FakeModelServer, cats: Path) -> None:
    result = invoke(["--backend", "openai", "--context-file", str(cats), "--query", "Cats?"])
    assert (result.exit_code, result.stdout) == (0, "3 cats\n"), result.stderr
    assert "iteration 1: the model wrote 1 code block(s)" in result.stderr
    assert "sub-calls 3 done" in result.stderr  # a child run at each depth, then a plain call
    assert "rlm: answered in" in result.stderr
    assert "WITHOUT isolation" not in result.stderr


def test_json_holds_the_whole_result(openai_server: FakeModelServer, cats: Path) -> None:
    result = invoke([*LOCAL, "--context-file", str(cats), "--query", "Cats?", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "success", "answer", "error", "finish", "backend", "model", "recursive_model", "stats",
        "cost_summary", "history", "child_runs",
    }  # fmt: skip
    assert (data["success"], data["answer"], data["error"]) == (True, "3 cats", None)
    assert data["finish"] in ("final", "final_var")
    assert (data["backend"], data["model"]) == ("openai", "gpt-4o")
    assert data["stats"]["iterations"] == 2
    assert data["stats"]["total_sub_calls"] == 1
    assert data["cost_summary"]["calls"] == 3
    assert [step["iteration"] for step in data["history"]] == [1, 2]
    assert data["child_runs"] == []  # --max-depth 1: plain sub-calls only


def test_a_large_context_file_is_described_once_its_sandbox_checked_it(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    text = "caf\u00e9 au lait\n" * (EAGER_CHECK_BYTES // 10)
    big.write_text(text)
    openai_server.handler = lambda request: repl("FINAL(str(len(CONTEXT)))")
    result = invoke([*LOCAL, "--context-file", str(big), "--query", "How long?"])
    assert (result.exit_code, result.stdout) == (0, f"{len(text)}\n"), result.stderr
    system = openai_server.requests[0].json["messages"][0]["content"]
    lines = text.count("\n") + 1
    assert f"a str of {len(text):,} characters in {lines:,} lines" in system


def test_no_answer_exits_1(openai_server: FakeModelServer, cats: Path) -> None:
    openai_server.handler = lambda request: repl("print('still looking')")
    args = [*LOCAL, "--context-file", str(cats), "--query", "Cats?", "--max-iterations", "1"]
    result = invoke(args)
    assert (result.exit_code, result.stdout) == (1, "")
    assert "no answer: max_iterations=1 reached" in result.stderr
    assert "best partial answer:\nstill looking" in result.stderr

    as_json = json.loads(invoke([*args, "--json"]).stdout)
    assert (as_json["success"], as_json["answer"]) == (False, "still looking")


def test_a_budget_reached_exits_1(openai_server: FakeModelServer, cats: Path) -> None:
    args = [*LOCAL, "--context-file", str(cats), "--query", "Cats?", "--max-sub-calls", "0"]
    result = invoke(args)
    assert result.exit_code == 1
    assert "no answer:" in result.stderr
    assert "max_sub_calls" in result.stderr


def test_a_model_failing_mid_run_exits_1(openai_server: FakeModelServer, cats: Path) -> None:
    openai_server.push(
        repl("print(len(CONTEXT))"),
        Reply(status=400, text="bad request", headers={"x-should-retry": "false"}),
    )
    result = invoke([*LOCAL, "--context-file", str(cats), "--query", "Cats?"])
    assert result.exit_code == 1
    assert "no answer: the model call failed" in result.stderr
    assert "answered 400: bad request" in result.stderr


def test_context_from_stdin(openai_server: FakeModelServer) -> None:
    result = invoke([*LOCAL, "--context-file", "-", "--query", "Cats?"], stdin="cat cat")
    assert (result.exit_code, result.stdout) == (0, "2 cats\n")


def test_query_from_a_file(openai_server: FakeModelServer, cats: Path, tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("How many cats?\n")
    result = invoke([*LOCAL, "--context-file", str(cats), "--query-file", str(tmp_path / "q.txt")])
    assert (result.exit_code, result.stdout) == (0, "3 cats\n")
    assert "Query: How many cats?" in last_user_text(openai_server.requests[0].json)


def describe_context(request: dict[str, object]) -> str:
    return repl("FINAL(f'{type(CONTEXT).__name__} {[len(part) for part in CONTEXT]}')")


def describe_files(request: dict[str, object]) -> str:
    return repl("FINAL(json.dumps({name: len(text) for name, text in CONTEXT.items()}))")


def test_a_directory_gives_its_text_files_by_path(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("b" * 3)
    (folder / "sub" / "a.md").write_text("a" * 5)
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (folder / "old.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / ".hidden").write_text("h")
    openai_server.handler = describe_files
    result = invoke([*LOCAL, "--context-file", str(folder), "--query", "What is there?"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"b.txt": 3, "sub/a.md": 5}\n'
    # Binary and undecodable files are skipped alike, and named.
    assert "skipped 2 file(s)" in result.stderr
    assert "not utf-8 text" in result.stderr
    assert "logo.png, old.txt" in result.stderr
    # The model is told what the keys are.
    system = openai_server.requests[0].json["messages"][0]["content"]
    assert "a dict of 2 str keys ('b.txt', 'sub/a.md') mapping to str values" in system


def test_an_encoding_reads_what_utf8_skipped(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "old.txt").write_bytes("caf\xe9".encode("latin-1"))
    openai_server.handler = describe_files
    args = ["--context-file", str(folder), "--encoding", "latin-1", "--query", "What?"]
    result = invoke([*LOCAL, *args])
    assert (result.exit_code, result.stdout) == (0, '{"old.txt": 4}\n'), result.stderr
    assert "skipped" not in result.stderr


def test_a_directory_among_files_keys_every_path_as_given(
    openai_server: FakeModelServer, cats: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "x.txt").write_text("x" * 7)
    openai_server.handler = describe_files
    args = ["--context-file", str(folder), "--context-file", str(cats)]
    result = invoke([*LOCAL, *args, "--query", "What is there?"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {str(cats): 20, f"{folder}/x.txt": 7}


def test_several_context_files_give_a_list(
    openai_server: FakeModelServer, cats: Path, tmp_path: Path
) -> None:
    (tmp_path / "more.txt").write_text("x" * 7)
    openai_server.handler = describe_context
    args = ["--context-file", str(cats), "--context-file", str(tmp_path / "more.txt")]
    result = invoke([*LOCAL, *args, "--query", "What is there?"])
    assert (result.exit_code, result.stdout) == (0, "list [20, 7]\n")


def test_trace_records_every_event(
    openai_server: FakeModelServer, cats: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "run" / "trace.jsonl"
    result = invoke(
        [*LOCAL, "--context-file", str(cats), "--query", "Cats?", "--trace", str(trace)]
    )
    assert result.exit_code == 0
    types = [json.loads(line)["type"] for line in trace.read_text().splitlines()]
    assert types[0] == "start"
    assert types[-2:] == ["final", "end"]
    assert {"model_response", "execute", "sub_call"} <= set(types)


def test_verbose_shows_code_and_quiet_shows_nothing(
    openai_server: FakeModelServer, cats: Path
) -> None:
    args = [*LOCAL, "--context-file", str(cats), "--query", "Cats?"]
    verbose = invoke([*args, "--verbose"])
    assert "n = CONTEXT.count('cat')" in verbose.stderr
    assert "final answer: 3 cats" in verbose.stderr

    quiet = invoke([*args, "--quiet"])
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "3 cats\n", "")


LONG_LINE = "total = " + " + ".join(f"len(CONTEXT) * {i}" for i in range(12))


def wide_code_and_a_child(request: dict[str, object]) -> str:
    """The root writes a line wider than any terminal and asks a child run; the child
    answers at once."""
    text = last_user_text(request)
    if "another model sent you" in text:
        return repl("FINAL('child says 3')")
    if text.startswith("Query:"):
        return repl(f"{LONG_LINE}\nprint(llm_query('count'))")
    return repl("FINAL('done')")


def test_verbose_in_a_log_keeps_lines_whole_and_names_child_runs(
    openai_server: FakeModelServer, cats: Path
) -> None:
    openai_server.handler = wide_code_and_a_child
    args = ["--backend", "openai", "--runtime", "local", "--max-depth", "2", "--verbose"]
    result = invoke([*args, "--context-file", str(cats), "--query", "Count"])
    assert (result.exit_code, result.stdout) == (0, "done\n"), result.stderr
    lines = result.stderr.splitlines()
    assert LONG_LINE in lines  # not cut at 80 columns
    assert [line for line in lines if line != line.rstrip()] == []  # nor padded
    child = [line for line in lines if re.match(r"    \[[0-9a-f]{12} d1\] ", line)]
    assert any("child says 3" in line for line in child), result.stderr


def test_a_log_gets_a_heartbeat_during_a_long_block(
    openai_server: FakeModelServer, cats: Path
) -> None:
    def slow_block(request: dict[str, object]) -> str:
        if last_user_text(request).startswith("Query:"):
            return repl("import time\ntime.sleep(12)")
        return repl("FINAL('awake')")

    openai_server.handler = slow_block
    result = invoke([*LOCAL, "--context-file", str(cats), "--query", "Sleep"])
    assert (result.exit_code, result.stdout) == (0, "awake\n"), result.stderr
    assert "still running block 1/1: import time; sub-calls 0 done" in result.stderr


def test_budgets_and_models_reach_the_run(openai_server: FakeModelServer, cats: Path) -> None:
    args = ["--context-file", str(cats), "--query", "Cats?", "--model", "big"]
    result = invoke([*LOCAL, *args, "--recursive-model", "small", "--max-tokens", "100000"])
    assert result.exit_code == 0
    models = [request.json["model"] for request in openai_server.requests]
    assert models == ["big", "small", "big"]


def test_warm_pool_option_reaches_the_run(
    openai_server: FakeModelServer, cats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlm.sandbox.pool import SandboxPool

    sizes: list[int] = []
    original = SandboxPool.__init__

    def recording_init(self: SandboxPool, size: int, **kwargs: object) -> None:
        sizes.append(size)
        original(self, size, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SandboxPool, "__init__", recording_init)
    args = [*LOCAL, "--max-depth", "2", "--context-file", str(cats), "--query", "Cats?"]
    args += ["--warm-pool", "2"]
    result = invoke(args)
    assert (result.exit_code, result.stdout) == (0, "3 cats\n"), result.stderr
    assert sizes == [2]
    assert invoke([*args[:-1], "-1"]).exit_code == 2


def test_an_internal_error_is_one_line_and_its_traceback_shown_with_rlm_debug(
    openai_server: FakeModelServer, cats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlm.orchestrator import SandboxFactory

    async def broken(self: SandboxFactory, *args: object) -> None:
        raise RuntimeError("a bug in the factory")

    monkeypatch.setattr(SandboxFactory, "acquire", broken)
    args = [*LOCAL, "--context-file", str(cats), "--query", "Cats?"]
    plain = invoke(args)
    assert plain.exit_code == 1
    assert "rlm: no answer: the run failed: RuntimeError: a bug in the factory" in plain.stderr
    assert "Traceback" not in plain.stderr

    monkeypatch.setenv("RLM_DEBUG", "1")
    debug = invoke(args)
    assert debug.exit_code == 1
    assert "rlm: no answer: the run failed: RuntimeError: a bug in the factory" in debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'in broken\n    raise RuntimeError("a bug in the factory")' in debug.stderr
