"""A whole run over HTTP: OpenAICompatibleBackend against the local fake model server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rlm import RLM
from rlm.backends import OpenAICompatibleBackend
from tests.fakes.model_server import FakeModelServer, Reply, last_user_text
from tests.orchestrator.helpers import repl


@pytest.mark.container
async def test_run_through_the_openai_wire_format(model_server: FakeModelServer) -> None:
    def serve(request: dict[str, Any]) -> Reply:
        text = last_user_text(request)
        if request["model"] == "small":
            return Reply(text=str(len(re.findall(r"\bcat\b", text))), cost=0.001)
        if text.startswith("Query:"):
            return Reply(
                text=repl(
                    "halves = [CONTEXT[:len(CONTEXT)//2], CONTEXT[len(CONTEXT)//2:]]\n"
                    "counts = llm_query_batched(['Count cats:\\n' + h for h in halves])\n"
                    "print('counts', counts)"
                ),
                cost=0.01,
            )
        counts = re.findall(r"'(\d+)'", text)
        return Reply(text=repl(f"FINAL('{sum(map(int, counts))} cats')"), cost=0.01)

    model_server.handler = serve
    backend = OpenAICompatibleBackend(base_url=model_server.openai_url, api_key="test-key")
    try:
        rlm = RLM(backend, model="big", recursive_model="small", max_depth=1)
        context = "dog cat bird cat fish " * 50 + "cat"
        result = await rlm.acompletion(context, "How many cats?")
    finally:
        await backend.aclose()

    assert (result.success, result.answer) == (True, f"{context.count('cat')} cats")
    first = model_server.requests[0].json
    assert first["messages"][0]["role"] == "system"
    assert "dog cat bird" not in json.dumps(first)  # the model never saw CONTEXT
    summary = rlm.cost_summary()
    assert summary["by_model"]["big"]["calls"] == 2
    assert summary["by_model"]["small"]["calls"] == 2
    assert abs(summary["cost_usd"] - 0.022) < 1e-9
