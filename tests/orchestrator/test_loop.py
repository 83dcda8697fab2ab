"""The loop end to end: real sandboxes, a scripted model writing code from what it sees."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from rlm import RLM, ContextFile, RLMResult, RLMStats
from rlm.backends import Message, ScriptedBackend
from rlm.errors import AuthenticationError, NotUtf8Error
from rlm.orchestrator import SandboxFactory
from tests.orchestrator.helpers import last_user, read_trace, repl

NEEDLE_CONTEXT = "\n".join(
    f"line {i}: nothing to see here" if i != 3217 else "line 3217: the access code is 7431-ZX"
    for i in range(6000)
)


@pytest.mark.container
async def test_needle_found_by_regex_in_a_container() -> None:
    def model(messages: list[Message], model: str) -> str:
        if len(messages) == 1:
            return repl(
                "print(type(CONTEXT).__name__, len(CONTEXT))\n"
                "hits = re.findall(r'access code is (\\S+)', CONTEXT)\n"
                "print('hits:', hits)",
                "I will search rather than read.",
            )
        found = re.search(r"hits: \['(.+?)'\]", last_user(messages))
        return repl(f"FINAL({found.group(1)!r})" if found else "FINAL('not found')")

    backend = ScriptedBackend(model)
    result = await RLM(backend, model="root").acompletion(NEEDLE_CONTEXT, "What is the code?")

    assert isinstance(result, RLMResult) and isinstance(result.stats, RLMStats)
    assert (result.success, result.error, result.answer) == (True, None, "7431-ZX")
    assert result.stats.iterations == 2 == len(result.history)
    first = result.history[0]
    assert first["outputs"][0]["stdout"].startswith(f"str {len(NEEDLE_CONTEXT)}")
    assert result.history[1]["final"] == "7431-ZX"
    # The model was told the size of CONTEXT, never shown it.
    system = backend.calls[0].system or ""
    assert f"{len(NEEDLE_CONTEXT):,} characters" in system
    assert "7431-ZX" not in system + backend.calls[0].messages[0]["content"]
    assert result.stats.sandbox_time_s > 0


async def test_final_var() -> None:
    backend = ScriptedBackend(
        [repl("words = CONTEXT.split()\nresult = f'{len(words)} words'\nFINAL_VAR('result')")]
    )
    result = await RLM(backend, runtime="local").acompletion("a b c d", "Count words")
    assert (result.success, result.answer) == (True, "4 words")


async def test_code_error_is_fed_back_and_recovered_from() -> None:
    def model(messages: list[Message], model: str) -> str:
        if len(messages) == 1:
            return repl("number = int(CONTEXT)")
        if "ValueError" in last_user(messages):
            return repl("number = int(CONTEXT.split()[-1])\nFINAL(str(number * 2))", "Fix it.")
        return repl("FINAL('the error was not shown')")

    result = await RLM(ScriptedBackend(model), runtime="local").acompletion("value: 21", "Double")
    assert (result.success, result.answer) == (True, "42")
    error = result.history[0]["outputs"][0]["error"]
    assert error["name"] == "ValueError"


async def test_blocks_after_a_failing_block_do_not_run() -> None:
    def model(messages: list[Message], model: str) -> str:
        if len(messages) == 1:
            return repl("1 / 0") + "\n" + repl("FINAL('should not run')")
        return repl(f"FINAL({last_user(messages)!r})")

    result = await RLM(ScriptedBackend(model), runtime="local").acompletion("x", "q")
    assert "ZeroDivisionError" in result.answer
    assert "[block 2 was not run because block 1 failed]" in result.answer
    assert len(result.history[0]["outputs"]) == 1


async def test_reply_without_code_is_nudged_then_final_as_text() -> None:
    def model(messages: list[Message], model: str) -> str:
        if len(messages) == 1:
            return "I should think about this first."
        if "no ```repl code block" in last_user(messages):
            return "I am confident now.\nFINAL(forty-two)"
        return "FINAL(no nudge seen)"

    result = await RLM(ScriptedBackend(model), runtime="local").acompletion("x", "q")
    assert (result.success, result.answer) == (True, "forty-two")
    assert result.history[0]["code_blocks"] == [] and result.history[0]["outputs"] == []
    assert result.stats.iterations == 2


async def test_textual_final_beside_code_is_ignored_and_final_var_text_is_evaluated() -> None:
    replies = [
        repl("total = sum(map(int, CONTEXT.split()))\nprint(total)") + "\nFINAL(premature)",
        "FINAL_VAR(missing)",
        "The variable is ready.\nFINAL_VAR(total)",
    ]
    backend = ScriptedBackend(replies)
    result = await RLM(backend, runtime="local").acompletion("1 2 3", "Sum")
    assert (result.success, result.answer) == (True, "6")
    # FINAL_VAR of an unknown name ran in the sandbox and its NameError went back.
    assert "NameError" in backend.calls[2].messages[-1]["content"]
    assert result.stats.root_calls == 3


async def test_max_iterations_then_one_last_call_answers() -> None:
    def model(messages: list[Message], model: str) -> str:
        if "no replies left" in last_user(messages):
            return repl("FINAL(f'after {step} steps')")
        return repl("step = globals().get('step', 0) + 1\nprint('step', step)")

    result = await RLM(ScriptedBackend(model), runtime="local", max_iterations=2).acompletion(
        "x", "q"
    )
    assert (result.success, result.answer) == (True, "after 2 steps")
    assert (result.stats.iterations, result.stats.root_calls) == (2, 3)


async def test_max_iterations_exhausted_fails_with_the_partial_answer() -> None:
    backend = ScriptedBackend(lambda messages, model: repl("print('still looking', len(CONTEXT))"))
    result = await RLM(backend, runtime="local", max_iterations=2).acompletion("abc", "q")
    assert result.success is False
    assert result.error == "max_iterations=2 reached without a final answer"
    assert result.answer == "still looking 3"
    assert (result.stats.iterations, result.stats.root_calls, len(result.history)) == (2, 3, 3)


def test_backend_failure_ends_the_run_cleanly() -> None:
    backend = ScriptedBackend([repl("print('hello')"), AuthenticationError("bad key")])
    result = RLM(backend, runtime="local").completion("x", "q")
    assert result.success is False
    assert result.error == "the model call failed: AuthenticationError: bad key"
    assert result.answer == "hello"


@pytest.mark.container
async def test_sandbox_failure_ends_the_run_cleanly() -> None:
    backend = ScriptedBackend([repl("FINAL('unreachable')")])
    rlm = RLM(backend, image="localhost/rlm-no-such-image:0")
    result = await rlm.acompletion("x", "q")
    assert result.success is False
    assert result.error is not None and "rlm-no-such-image" in result.error
    assert backend.calls == []


async def test_an_internal_error_is_logged_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: SandboxFactory, *args: object) -> None:
        raise RuntimeError("a bug in the factory")

    monkeypatch.setattr(SandboxFactory, "acquire", broken)
    caplog.set_level(logging.DEBUG, logger="rlm")
    result = await RLM(ScriptedBackend([]), runtime="local").acompletion("x", "q")
    # The user gets the clean result; the log keeps the traceback for RLM_DEBUG.
    assert result.success is False
    assert result.error == "the run failed: RuntimeError: a bug in the factory"
    (record,) = [r for r in caplog.records if r.name == "rlm.orchestrator.run"]
    assert record.levelno == logging.DEBUG and record.exc_info is not None
    assert "in broken" in caplog.text and "a bug in the factory" in caplog.text


async def test_a_context_of_the_wrong_type_is_a_caller_error() -> None:
    backend = ScriptedBackend([])
    with pytest.raises(TypeError, match="str, list or dict"):
        await RLM(backend, runtime="local").acompletion(42, "q")  # type: ignore[arg-type]


async def test_an_unchecked_context_file_is_described_once_its_sandbox_checked_it(
    tmp_path: Path,
) -> None:
    document = tmp_path / "doc.txt"
    document.write_text("caf\u00e9\nau lait")
    backend = ScriptedBackend([repl("FINAL(CONTEXT)")])
    rlm = RLM(backend, runtime="local")
    result = await rlm.acompletion(ContextFile.unchecked(document), "Echo")
    assert result.answer == "caf\u00e9\nau lait"
    assert "a str of 12 characters in 2 lines" in (backend.calls[0].system or "")

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff ok")
    with pytest.raises(NotUtf8Error, match="byte 0xff at offset 3"):
        await rlm.acompletion(ContextFile.unchecked(bad), "q")


async def test_an_unchecked_context_file_whose_sandbox_failed_is_still_described(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def broken(self: SandboxFactory, *args: object) -> None:
        raise RuntimeError("a bug in the factory")

    monkeypatch.setattr(SandboxFactory, "acquire", broken)
    document = tmp_path / "doc.txt"
    document.write_text("caf\u00e9\nau lait")
    trace = tmp_path / "trace.jsonl"
    rlm = RLM(ScriptedBackend([]), runtime="local")
    result = await rlm.acompletion(ContextFile.unchecked(document), "q", trace=trace)
    assert result.error == "the run failed: RuntimeError: a bug in the factory"
    events = read_trace(trace)
    assert [e["type"] for e in events] == ["start", "error", "end"]
    assert events[0]["context_chars"] == 12


async def test_list_context_is_described_and_loaded_as_a_list() -> None:
    backend = ScriptedBackend([repl("FINAL(' / '.join(CONTEXT))")])
    result = await RLM(backend, runtime="local").acompletion(["a", "b"], "Join")
    assert result.answer == "a / b"
    assert "a list of 2 items of str" in (backend.calls[0].system or "")
