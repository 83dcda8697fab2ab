"""Answer integrity: the host takes FINAL only from the reply, only as text, only once."""

from __future__ import annotations

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import output

pytestmark = [
    pytest.mark.container,
    pytest.mark.rootless,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_final_arrives_exactly(box: Sandbox) -> None:
    text = "Réponse: 42 ✓ \u0000 \ud7ff\n\ttabs"
    result = await box.execute(f"FINAL({text!r})")
    assert result.final == text


async def test_final_of_one_execute_does_not_leak_into_the_next(box: Sandbox) -> None:
    await box.execute("FINAL('first')")
    assert (await box.execute("x = 1")).final is None


async def test_non_text_final_planted_in_the_runtime_is_ignored(box: Sandbox) -> None:
    result = await box.execute("get_ipython().kernel.runtime.final = {'not': 'text'}")
    assert result.final is None


async def test_rebound_names_are_restored(box: Sandbox) -> None:
    result = await box.execute(
        "FINAL = lambda answer: None\nllm_query = lambda prompt: 'forged'\nCONTEXT = 'swapped'"
    )
    assert set(result.restored_names) >= {"FINAL", "llm_query", "CONTEXT"}
    assert await output(box, "print(llm_query('q'), CONTEXT)") == (
        "answer to q the sandbox's own document"
    )
    assert (await box.execute("FINAL('real')")).final == "real"


async def test_final_var_of_an_unknown_name_is_an_error(box: Sandbox) -> None:
    result = await box.execute("FINAL_VAR('no_such_name')")
    assert result.final is None and result.error is not None and result.error.name == "NameError"


async def test_forged_reply_fields_of_the_wrong_type_are_ignored(box: Sandbox) -> None:
    result = await box.execute(
        "k = get_ipython().kernel\n_orig = k.runtime.restore_reserved\n"
        "k.runtime.restore_reserved = lambda: [1, None, 'ok']\n"
    )
    assert result.error is None and result.restored_names == ["ok"]
    await box.execute("get_ipython().kernel.runtime.restore_reserved = _orig")
