"""The names rlm puts in the kernel's namespace, and how the kernel reports back.

CONTEXT is read once from a file the host mounts read-only; it never travels over ZMQ.
FINAL / FINAL_VAR record an answer that the kernel returns in the execute_reply, so the
host learns it without an extra round trip.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import mmap
import os
import re
from typing import Any

from rlm_kernel import protocol
from rlm_kernel.callback import CallbackClient, LLMQueryError
from rlm_kernel.protocol import Env


def load_context(path: str, fmt: str) -> Any:
    # Decoding straight from a mapping of the file avoids holding the bytes and the str
    # at once: the page cache is reclaimable, a bytes copy is not.
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            text = ""
        else:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                text = str(mapped, "utf-8")
    return json.loads(text) if fmt == "json" else text


class Runtime:
    """Owns the reserved names of one kernel and the answer recorded by FINAL."""

    def __init__(self, context: Any, client: CallbackClient | None) -> None:
        self.context = context
        self._client = client
        self.final: str | None = None
        self.reserved: dict[str, Any] = {
            "CONTEXT": context,
            "context": context,
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "FINAL": self.FINAL,
            "FINAL_VAR": self.FINAL_VAR,
            "set_context": self.set_context,
        }
        self._namespace: dict[str, Any] = {}

    @classmethod
    def from_environment(cls) -> Runtime:
        path = os.environ.get(Env.CONTEXT_FILE)
        fmt = os.environ.get(Env.CONTEXT_FORMAT, protocol.DEFAULT_CONTEXT_FORMAT)
        context = load_context(path, fmt) if path else ""
        callback_file = os.environ.get(Env.CALLBACK_FILE)
        timeout = float(os.environ.get(Env.CALLBACK_TIMEOUT, protocol.DEFAULT_CALLBACK_TIMEOUT))
        endpoint = os.environ.get(Env.CALLBACK_ENDPOINT, "")
        client = (
            CallbackClient.from_file(callback_file, endpoint, timeout) if callback_file else None
        )
        return cls(context, client)

    def install(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace
        namespace.update(re=re, json=json, math=math, collections=collections, itertools=itertools)
        namespace.update(self.reserved)

    def restore_reserved(self) -> list[str]:
        """Put back any reserved name user code rebound; return the names restored."""
        restored = []
        for name, value in self.reserved.items():
            if self._namespace.get(name) is not value:
                self._namespace[name] = value
                restored.append(name)
        return restored

    # --- names user code calls ---------------------------------------------------

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """Ask the sub-model; returns its answer as a string."""
        client = self._require_client()
        reply = client.call(protocol.LLM_QUERY, {"prompt": str(prompt), "model": model})
        return reply["result"]

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """Ask the sub-model several prompts at once; answers come back in order.

        The host runs them concurrently. A prompt that fails gives a string starting with
        "[llm_query failed:" in its place rather than sinking the whole batch.
        """
        client = self._require_client()
        reply = client.call(
            protocol.LLM_QUERY_BATCHED, {"prompts": [str(p) for p in prompts], "model": model}
        )
        return [
            item["result"] if item["status"] == "ok" else f"[llm_query failed: {item['error']}]"
            for item in reply["results"]
        ]

    def FINAL(self, answer: Any) -> str:
        """Record the final answer; the run ends after this code block."""
        self.final = answer if isinstance(answer, str) else str(answer)
        return self.final

    def FINAL_VAR(self, name: Any) -> str:
        """Record the variable called `name` as the final answer."""
        if not isinstance(name, str):
            raise TypeError("FINAL_VAR takes the variable's name as a string, e.g. FINAL_VAR('x')")
        key = name.strip()
        if key not in self._namespace:
            raise NameError(f"FINAL_VAR: no variable named {key!r}")
        return self.FINAL(self._namespace[key])

    def set_context(self, value: Any) -> None:
        """Replace CONTEXT (and `context`): a str, or a list/dict. CONTEXT itself is reserved."""
        if not isinstance(value, str | list | dict):
            raise TypeError(f"CONTEXT must be a str, list or dict, not {type(value).__name__}")
        self.context = value
        self.reserved["CONTEXT"] = self.reserved["context"] = value
        self._namespace["CONTEXT"] = self._namespace["context"] = value

    def load_context_file(self, path: str, fmt: str) -> None:
        """Replace CONTEXT from a file the host wrote (a pooled kernel gets its data here)."""
        self.set_context(load_context(path, fmt))

    def _require_client(self) -> CallbackClient:
        if self._client is None:
            raise LLMQueryError("llm_query is not available: this kernel has no callback channel")
        return self._client
