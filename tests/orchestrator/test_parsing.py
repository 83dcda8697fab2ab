"""Which code runs and when a FINAL written as text ends the run."""

from __future__ import annotations

import pytest

from rlm.orchestrator.finish import Finish, plan, unmarked_answer
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


def test_textual_final_next_to_code_is_refused_with_a_note() -> None:
    reply = parse_reply("```repl\nprint(len(CONTEXT))\n```\nFINAL(too early)")
    taken = plan(reply, last=True)
    assert taken.blocks == ["print(len(CONTEXT))"]
    assert taken.answer is None
    assert taken.note is not None and "before the code ran" in taken.note


def test_textual_final_var_next_to_code_runs_after_it() -> None:
    reply = parse_reply("```repl\nbest = max(scores)\n```\nFINAL_VAR(best)")
    assert plan(reply, last=False).blocks == ["best = max(scores)", "FINAL_VAR('best')"]


@pytest.mark.parametrize(
    ("text", "blocks"),
    [
        ("```repl\nx = 1\n````", ["x = 1"]),  # a longer closer
        ("Let me look.\n```python\nprint(len(CONTEXT))", ["print(len(CONTEXT))"]),  # unclosed
        ("```python3\nx = 1\n```", ["x = 1"]),
        ("```repl title=step-1\nx = 1\n```", ["x = 1"]),  # junk after the label
        ("```python:\nx = 1\n```", ["x = 1"]),
        (
            "```pez\nparts = CONTEXT.split()\nprint(len(parts))\n```",
            ["parts = CONTEXT.split()\nprint(len(parts))"],
        ),
        ("```pez\nThe answer is near the end.\n```", []),  # prose under a junk label
        ("```output\nx = 1\n```", []),
        ("```\nprint(1)\n```", []),  # bare fences hold quoted output and plans
        ("    x = 1\n", []),  # an indented block
        ("<think>\nplan\n</think>\n```repl\nx = 1\n```", ["x = 1"]),  # no blank line after
        ("<think>\n```repl\ndraft = 1\n```\n</think>\n\n```repl\nx = 1\n```", ["x = 1"]),
    ],
)
def test_lenient_fences(text: str, blocks: list[str]) -> None:
    assert parse_reply(text).code_blocks == blocks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I found it.\nFINAL(The answer is 42)", TextFinal("answer", "The answer is 42")),
        ('FINAL("quoted (with parens)")\nThanks!', TextFinal("answer", "quoted (with parens)")),
        ("FINAL(f(x) = 3)\n\nDone (really).", TextFinal("answer", "f(x) = 3")),
        ("Result:\n  FINAL(multi\nline)", TextFinal("answer", "multi\nline")),
        ("FINAL_VAR(summary)", TextFinal("var", "summary")),
        ("FINAL_VAR('summary')", TextFinal("var", "summary")),
        ("**FINAL(Paris)**", TextFinal("name", "Paris")),
        ("FINAL(random_number)", TextFinal("name", "random_number")),
        ("FINAL('Paris')", TextFinal("answer", "Paris")),
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
        "```repl\n# FINAL(in a comment)\nprint('FINAL(in a string)')\n```",
        "`FINAL(in backticks)`",
        "    FINAL(in an indented block)",
        "```python\nx = 1\nFINAL(inside an unclosed fence)",
        "<think>\nFINAL(just musing)\n</think>\nLet me check first.",
    ],
)
def test_no_textual_final(text: str) -> None:
    assert parse_reply(text).final is None


@pytest.mark.parametrize(
    ("prose", "last", "answer"),
    [
        ("I counted them.\nFinal answer: 42", False, "42"),
        ("**Final Answer:** Paris", False, "Paris"),
        ("FINAL the meeting is on Tuesday", False, "the meeting is on Tuesday"),
        ("FINAL: 17", False, "17"),
        ("The final answer is:\n\n**1,234 records**\n\nThanks.", False, "1,234 records"),
        ("It is probably Paris.", False, None),  # mid-run prose is not an answer...
        ("It is probably Paris.", True, "It is probably Paris."),  # ...but the last reply is
        ("Finally, let me check more.", False, None),
        ("   ", True, None),
    ],
)
def test_unmarked_answers(prose: str, last: bool, answer: str | None) -> None:
    assert unmarked_answer(prose, last=last) == answer


def test_unmarked_answer_is_flagged_and_never_read_from_code() -> None:
    taken = plan(parse_reply("Done.\nFinal answer: 7"), last=False)
    assert (taken.answer, taken.finish) == ("7", Finish.UNMARKED)
    quoted = parse_reply("```text\nFinal answer: 7\n```")
    assert plan(quoted, last=False).answer is None
    assert plan(quoted, last=True).answer is None  # nothing left once the fence is gone


def test_prose_final_of_a_name_reads_the_variable_if_there_is_one() -> None:
    taken = plan(parse_reply("FINAL(total)"), last=False)
    assert taken.blocks == ["FINAL_VAR('total') if 'total' in globals() else FINAL('total')"]
