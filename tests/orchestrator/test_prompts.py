"""The system prompt describes CONTEXT without showing it."""

from __future__ import annotations

import pytest

from rlm.orchestrator.prompts import describe_context, system_prompt


def test_describes_type_and_size_never_content() -> None:
    context = "top secret line\n" * 1000
    for compact in (False, True):
        prompt = system_prompt(*describe_context(context)[:2], max_iterations=7, compact=compact)
        assert "top secret" not in prompt
        assert f"{len(context):,} characters" in prompt
        assert "7 replies" in prompt
        for name in ("CONTEXT", "llm_query_batched", "FINAL_VAR", "```repl"):
            assert name in prompt
    full = system_prompt("a str", "str", max_iterations=7, compact=False)
    compact = system_prompt("a str", "str", max_iterations=7, compact=True)
    assert len(compact) < len(full) / 2


def test_describes_lists_and_dicts() -> None:
    assert describe_context(["ab", "cd"])[:2] == (
        "a list of 2 items of str, 12 characters as JSON",
        "list",
    )
    description, kind, size = describe_context({"a": 1, "b": [1, 2]})
    assert (kind, size) == ("dict", len('{"a": 1, "b": [1, 2]}'))
    assert description.startswith("a dict of 2 str keys ('a', 'b') mapping to int/list values")
    files = {f"part{i}.txt": "text" for i in range(9)}
    description = describe_context(files)[0]
    assert "9 str keys ('part0.txt', 'part1.txt', 'part2.txt', 'part3.txt', 'part4.txt', ...)" in (
        description
    )
    with pytest.raises(TypeError, match="str, list or dict"):
        describe_context(42)
