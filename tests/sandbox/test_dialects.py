"""The kernel's side of other runtimes' dialects: FINAL_VAR's rules, aliases, the answer
dict, awaitable llm_query, and the hints an unknown name gets."""

from __future__ import annotations

import json

import pytest

from rlm.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.rootless


@pytest.mark.parametrize(
    ("code", "final", "finish"),
    [
        ("summary = 'all good'\nFINAL_VAR('summary')", "all good", "final_var"),
        ("summary = 'all good'\nFINAL_VAR(summary)", "all good", "final_var"),
        ("city = 'Paris'\nFINAL_VAR(city)", "Paris", "final_var"),  # a name-like value
        ("def f():\n    inner = 'deep'\n    FINAL_VAR('inner')\nf()", "deep", "final_var"),
        ("FINAL_VAR(llm_query('Paris'))", "answer to Paris", "final_var"),
        ("FINAL_VAR('The total is 12')", "The total is 12", "final_var"),
        ("n = 42\nFINAL_VAR(n)", "42", "final_var"),
        ("FINAL([1, 'two', {'x': 3}])", '[1, "two", {"x": 3}]', "final"),
        ("FINAL({'a': 1})", '{"a": 1}', "final"),
        ("FINAL(3.5)", "3.5", "final"),
        (
            "answer['content'] = 'from the dict'\nanswer['ready'] = True",
            "from the dict",
            "answer_dict",
        ),
        ("answer = {'content': [1, 2], 'ready': True}", "[1, 2]", "answer_dict"),
        ("answer['content'] = 'x'\nFINAL_VAR(answer)", "x", "final_var"),
    ],
)
async def test_finishing_forms(sandbox: Sandbox, code: str, final: str, finish: str) -> None:
    result = await sandbox.execute(code)
    assert result.error is None, result.error
    assert (result.final, result.finish) == (final, finish)


@pytest.mark.parametrize(
    "code",
    [
        "answer['content'] = 'draft'",  # not ready
        "answer['ready'] = True",  # ready with nothing in it
        "answer = 'a plain string'",
        "answer = {'content': 'x', 'ready': True, 'other': 1}",  # not the answer dict
        "answer['content'] = 'x'\nanswer['ready'] = True\nraise ValueError('later')",
        "print('FINAL(42)')  # FINAL(42)",
    ],
)
async def test_nothing_final(sandbox: Sandbox, code: str) -> None:
    result = await sandbox.execute(code)
    assert result.final is None


async def test_bad_finals_say_why(sandbox: Sandbox) -> None:
    await sandbox.execute("found = 3")
    missing = await sandbox.execute("FINAL_VAR('reslt')")
    assert missing.final is None and missing.error is not None
    assert missing.error.name == "NameError"
    assert "no variable named 'reslt'" in missing.error.value and "found" in missing.error.value
    none = await sandbox.execute("FINAL(print('x'))")
    assert none.final is None and none.error is not None and "None" in none.error.value
    empty = await sandbox.execute("FINAL_VAR(answer)")  # the preset, still empty
    assert empty.final is None and empty.error is not None


async def test_unknown_name_lists_the_repl_and_user_names(sandbox: Sandbox) -> None:
    await sandbox.execute("chunks = [1, 2]")
    result = await sandbox.execute("print(chunk)")
    assert result.error is not None and result.error.name == "NameError"
    assert "llm_query_batched" in result.error.value and "chunks" in result.error.value
    other = await sandbox.execute("context_3")
    assert other.error is not None and "one context" in other.error.value


async def test_aliases(sandbox: Sandbox) -> None:
    result = await sandbox.execute(
        "x = 1\n"
        "print(context_0 is CONTEXT, completion_context is CONTEXT)\n"
        "print(rlm_query('a'), rlm_query_batched(['b']))\n"
        "print(SHOW_VARS())"
    )
    assert result.error is None, result.error
    lines = result.stdout.splitlines()
    assert lines[0] == "True True"
    assert lines[1] == "answer to a ['answer to b']"
    listing = "\n".join(lines[2:])
    assert "x: int" in listing and "CONTEXT" not in listing and "answer" not in listing


async def test_llm_query_can_be_awaited(sandbox: Sandbox) -> None:
    result = await sandbox.execute(
        "import asyncio\n"
        "one = await llm_query('a')\n"
        "many = await asyncio.gather(*[llm_query(p) for p in ['b', 'c']])\n"
        "batch = await llm_query_batched(['d'])\n"
        "plain = llm_query('e').upper()\n"
        "print(json.dumps([one, many, batch, plain]))"
    )
    assert result.error is None, result.error
    assert json.loads(result.stdout) == [
        "answer to a",
        ["answer to b", "answer to c"],
        ["answer to d"],
        "ANSWER TO E",
    ]
