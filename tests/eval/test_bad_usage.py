"""Problems found before any task runs: exit 2 and one line saying what to do."""

from __future__ import annotations

import pytest

from tests.eval.helpers import run_eval


def test_no_key_for_the_preset_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run_eval("--task", "sniah", "--lengths", "2^13")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "no endpoint configured for --backend anthropic: set ANTHROPIC_API_KEY" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lengths", "2^9"], "--lengths: length 2^9 is outside 2^10..2^26 tokens"),
        (["--lengths", "lots"], "--lengths: 'lots' is not a length"),
        (["--window-tokens", "big", "--baseline"], "--window-tokens: 'big' is not a length"),
        (["--n", "0"], "Invalid value for '-n' / '--n'"),
        (["--task", "ruler"], "Invalid value for '--task'"),
        (["--baseline", "--sub-model", "small"], "--sub-model has no use with --baseline"),
        # The engine is checked before the backend's settings, so this one needs an engine.
        pytest.param(
            ["--backend", "vllm"],
            "the vllm preset has no default model",
            marks=pytest.mark.container,
        ),
        (["--max-depth", "0", "--sub-model", "s"], "--sub-model has no use with --max-depth 0"),
        (["--runtime", "local", "--image", "x"], "--image has no use with --runtime local"),
        pytest.param(
            ["--base-url", "localhost:8000"], "is not an http(s) URL", marks=pytest.mark.container
        ),
    ],
)
def test_bad_options_exit_2_with_one_line(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    result = run_eval(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.container
def test_a_missing_kernel_image_is_reported_before_any_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    result = run_eval("--image", "localhost/no-such-image:0")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "kernel image localhost/no-such-image:0 not found" in result.stderr
