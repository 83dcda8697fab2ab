"""ClaudeCLIBackend against a fake `claude` executable on PATH."""

from __future__ import annotations

import os

import pytest

from rlm.backends import ClaudeCLIBackend
from rlm.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    ClaudeCLINotFoundError,
    MalformedResponseError,
    PromptTooLongError,
)
from tests.fakes.claude_cli import install_fake_claude, recorded_calls, result_json

SONNET = "claude-sonnet-4-20250514"
USER = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """A directory first on PATH, for the fake to be installed in."""
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


async def test_answer_usage_and_reported_cost(bin_dir):
    install_fake_claude(
        bin_dir,
        stdout=result_json("4", input_tokens=12, output_tokens=3, cache_read=100,
                           cache_write=50, total_cost_usd=0.0421),
    )  # fmt: skip
    backend = ClaudeCLIBackend()

    completion = await backend.acomplete(USER, SONNET, system="Be terse.")

    assert completion.text == "4"
    assert completion.model == SONNET
    usage = completion.usage
    assert (usage.input_tokens, usage.output_tokens) == (12, 3)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (100, 50)
    assert usage.cost_usd == 0.0421
    [call] = recorded_calls(bin_dir)
    assert call["stdin"] == "What is 2+2?"
    assert call["argv"] == [
        "-p", "--output-format", "json", "--model", SONNET, "--system-prompt", "Be terse.",
    ]  # fmt: skip


def test_sync_complete_priced_from_the_table_without_reported_cost(bin_dir):
    install_fake_claude(
        bin_dir, stdout=result_json(input_tokens=1_000_000, output_tokens=0, total_cost_usd=None)
    )
    backend = ClaudeCLIBackend()

    completion = backend.complete(USER, SONNET)

    assert completion.usage.cost_usd == pytest.approx(3.0)


async def test_a_conversation_is_sent_as_one_transcript(bin_dir):
    install_fake_claude(bin_dir, stdout=result_json())
    conversation = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "follow-up"},
    ]

    await ClaudeCLIBackend().acomplete(conversation, SONNET)

    prompt = recorded_calls(bin_dir)[0]["stdin"]
    assert isinstance(prompt, str)
    positions = [prompt.index(text) for text in ("first question", "first answer", "follow-up")]
    assert positions == sorted(positions)
    assert "<assistant>\nfirst answer\n</assistant>" in prompt


async def test_failing_exit_without_json_reports_stderr(bin_dir):
    install_fake_claude(bin_dir, stdout="", stderr="error: unknown option", exit_code=2)

    with pytest.raises(BackendError, match="exited with 2: error: unknown option"):
        await ClaudeCLIBackend().acomplete(USER, SONNET)


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ("Prompt is too long", PromptTooLongError),
        ("Invalid API key · Please run /login", AuthenticationError),
        ("something else broke", BackendError),
    ],
)
async def test_reported_errors(bin_dir, result, error):
    install_fake_claude(bin_dir, stdout=result_json(result, is_error=True), exit_code=1)

    with pytest.raises(error, match=result[:10]):
        await ClaudeCLIBackend().acomplete(USER, SONNET)


@pytest.mark.parametrize(
    "stdout", ["not json at all", "[1, 2]", '{"result": "no usage"}', result_json()[:-1]]
)
async def test_malformed_output(bin_dir, stdout):
    install_fake_claude(bin_dir, stdout=stdout)

    with pytest.raises(MalformedResponseError):
        await ClaudeCLIBackend().acomplete(USER, SONNET)


async def test_timeout_kills_the_process(bin_dir):
    install_fake_claude(bin_dir, stdout=result_json(), sleep_s=30)

    with pytest.raises(BackendTimeoutError, match=r"0\.5 s"):
        await ClaudeCLIBackend(timeout=0.5).acomplete(USER, SONNET)
    pid = recorded_calls(bin_dir)[0]["pid"]
    assert isinstance(pid, int)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running


def test_not_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory

    with pytest.raises(ClaudeCLINotFoundError, match="not on PATH"):
        ClaudeCLIBackend()
