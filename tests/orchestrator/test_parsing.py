"""Which code runs and when a FINAL written as text ends the run."""

from __future__ import annotations

import pytest

from rlm.orchestrator.parsing import TextFinal, parse_reply


def test_runnable_blocks_in_order_other_fences_ignored() -> None:
    text = (
        "Plan:\n```text\nnot code\n```\n"
        "```repl\nx = 1\n```\nthen\n```python\nprint(x)\n```\n```py\ny = 2\n```\n"
        "```\nbare fence\n```"
    )
    reply = parse_reply(text)
    assert reply.code_blocks == ["x = 1", "print(x)", "y = 2"]
    assert reply.final is None


def test_textual_final_is_ignored_when_code_is_present() -> None:
    reply = parse_reply("```repl\nprint(len(CONTEXT))\n```\nFINAL(too early)")
    assert reply.code_blocks == ["print(len(CONTEXT))"]
    assert reply.final is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I found it.\nFINAL(The answer is 42)", TextFinal("answer", "The answer is 42")),
        ('FINAL("quoted (with parens)")\nThanks!', TextFinal("answer", "quoted (with parens)")),
        ("FINAL(f(x) = 3)\n\nDone (really).", TextFinal("answer", "f(x) = 3")),
        ("Result:\n  FINAL(multi\nline)", TextFinal("answer", "multi\nline")),
        ("FINAL_VAR(summary)", TextFinal("var", "summary")),
        ("FINAL_VAR('summary')", TextFinal("var", "summary")),
    ],
)
def test_textual_final_without_code(text: str, expected: TextFinal) -> None:
    reply = parse_reply(text)
    assert reply.code_blocks == []
    assert reply.final == expected


@pytest.mark.parametrize(
    "text",
    [
        "I will call FINAL(x) once I know more.",  # not at the start of a line
        "```text\nFINAL(inside a fence)\n```",
        "FINAL_VAR(not a name!)",
        "Nothing to see.",
    ],
)
def test_no_textual_final(text: str) -> None:
    assert parse_reply(text).final is None
