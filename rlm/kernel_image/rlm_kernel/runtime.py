"""The names rlm puts in the kernel's namespace, and how the kernel reports back.

CONTEXT is read once from a file the host mounts read-only; it never travels over ZMQ.
FINAL / FINAL_VAR record an answer that the kernel returns in the execute_reply, so the
host learns it without an extra round trip, together with how the run finished.

FINAL_VAR(x), most specific rule first:
1. x is not a str (a number, list, dict, ...): x itself is the answer.
2. x is a str naming a variable (the caller's, then the REPL's): that variable's value.
3. x is the value of a variable (FINAL_VAR(answer) rather than FINAL_VAR("answer")), an
   llm_query answer, or a text with whitespace in it: x itself.
4. Otherwise x looks like a name that names nothing: NameError listing the defined
   names, and nothing is final.
Answers that are not str are written as JSON when they are lists or dicts, else str().
None is refused: FINAL(None) is almost always FINAL(print(...)) or a missing return.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import mmap
import os
import re
import sys
from typing import Any

from rlm_kernel import dialects, protocol
from rlm_kernel.callback import CallbackClient, LLMQueryError
from rlm_kernel.protocol import Env


def load_context(path: str, fmt: str) -> Any:
    """The context in a file mounted read-only (the user's own)."""
    with open(path, "rb") as f:
        return decode_context(f.fileno(), fmt)


def offered_context(client: CallbackClient | None, token: str, path: str | None) -> Any:
    """The context the host offers under `token`: a sealed memfd attached to its reply, or
    (when the reply brings none) the mounted file at `path`."""
    if client is None:
        raise RuntimeError("the host offers the context on the callback channel: it has none")
    reply, fd = client.call_for_fd(protocol.CONTEXT_FD, {"token": token})
    try:
        fmt = reply.get("format")
        if fmt not in protocol.CONTEXT_FORMATS:
            raise ValueError(f"unknown context format {fmt!r}")
        if fd is not None:
            return decode_context(fd, fmt)
        if not path:
            raise RuntimeError("the host offered no context and no file holds one")
        return load_context(path, fmt)
    finally:
        if fd is not None:
            os.close(fd)


def decode_context(fd: int, fmt: str) -> Any:
    # Decoding straight from a mapping avoids holding the bytes and the str at once.
    if os.fstat(fd).st_size == 0:
        text = ""
    else:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            text = str(mapped, "utf-8")
    return json.loads(text) if fmt == "json" else text


def format_answer(value: Any) -> str:
    """The text of an answer given as any value."""
    if value is None:
        raise ValueError("the answer is None: pass the answer itself (a str, number, list or dict)")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass  # e.g. non-str keys: fall back to Python's own spelling
    return str(value)


class Runtime:
    """Owns the reserved names of one kernel and the answer recorded by FINAL."""

    def __init__(self, context: Any, client: CallbackClient | None) -> None:
        self.context = context
        self._client = client
        self.final: str | None = None
        # How the answer was given: "final", "final_var" or "answer_dict".
        self.finish: str | None = None
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
        self._builtin: set[str] = set()

    @classmethod
    def from_environment(cls) -> Runtime:
        callback_file = os.environ.get(Env.CALLBACK_FILE)
        timeout = float(os.environ.get(Env.CALLBACK_TIMEOUT, protocol.DEFAULT_CALLBACK_TIMEOUT))
        endpoint = os.environ.get(Env.CALLBACK_ENDPOINT, "")
        client = (
            CallbackClient.from_file(callback_file, endpoint, timeout) if callback_file else None
        )
        token = os.environ.get(Env.CONTEXT_TOKEN)
        path = os.environ.get(Env.CONTEXT_FILE)
        fmt = os.environ.get(Env.CONTEXT_FORMAT, protocol.DEFAULT_CONTEXT_FORMAT)
        if token:  # rlm's Sandbox: asked afresh at every (re)start
            context = offered_context(client, token, path)
        else:  # kernels other tools start: their file, if any
            context = load_context(path, fmt) if path else ""
        return cls(context, client)

    def install(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace
        namespace.update(re=re, json=json, math=math, collections=collections, itertools=itertools)
        namespace.update(self.reserved)
        namespace.update(
            rlm_query=self.llm_query,
            rlm_query_batched=self.llm_query_batched,
            SHOW_VARS=self.SHOW_VARS,
            answer=dialects.preset_answer(),
        )
        namespace.update(dict.fromkeys(dialects.CONTEXT_ALIASES, self.context))
        # Everything present before user code runs (IPython's own names too) is not the
        # user's; `answer` is, once user code rebinds or fills it.
        self._builtin = set(namespace) - {"answer"}

    def user_names(self) -> list[str]:
        return dialects.user_names(self._namespace, self._builtin)

    def name_hint(self, missing: str | None) -> str:
        """What an unknown name's NameError adds: the REPL's names and the user's."""
        return dialects.name_hint(missing, self._namespace, self._builtin)

    def check_answer_dict(self) -> None:
        """Finish with answer["content"] if the block set answer["ready"] = True."""
        if self.final is None:
            ready, content = dialects.ready_answer(self._namespace)
            if ready:
                self._record(content, "answer_dict")

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
        """Ask the sub-model; returns its answer as a string (which `await` also accepts)."""
        client = self._require_client()
        reply = client.call(protocol.LLM_QUERY, {"prompt": str(prompt), "model": model})
        return dialects.Answer(reply["result"])

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """Ask the sub-model several prompts at once; answers come back in order.

        The host runs them concurrently. A prompt that fails gives a string starting with
        "[llm_query failed:" in its place rather than sinking the whole batch.
        """
        client = self._require_client()
        prompts = list(prompts)
        if len(prompts) > client.max_batch_prompts:
            raise LLMQueryError(
                f"llm_query_batched takes at most {client.max_batch_prompts:,} prompts, not "
                f"{len(prompts):,}: split the list and call it once per part"
            )
        reply = client.call(
            protocol.LLM_QUERY_BATCHED, {"prompts": [str(p) for p in prompts], "model": model}
        )
        return dialects.Answers(
            dialects.Answer(item["result"])
            if item["status"] == "ok"
            else f"[llm_query failed: {item['error']}]"
            for item in reply["results"]
        )

    def FINAL(self, answer: Any) -> str:
        """Record the final answer; the run ends after this code block."""
        return self._record(answer, "final")

    def FINAL_VAR(self, name: Any) -> str:
        """Record the variable called `name` (or a value passed in its place) as the answer."""
        if not isinstance(name, str):
            return self._record(name, "final_var")
        caller = sys._getframe(1).f_locals
        key = name.strip().strip("'\"`")
        for scope in (caller, self._namespace):
            if key.isidentifier() and key in scope:
                return self._record(scope[key], "final_var")
        if isinstance(name, dialects.Answer) or self._is_a_value(name, caller) or " " in key:
            return self._record(name, "final_var")
        names = ", ".join(self.user_names()) or "none yet"
        raise NameError(
            f"FINAL_VAR: no variable named {key!r} exists; your variables: {names}. "
            "Pass a variable (FINAL_VAR(x)) or its name (FINAL_VAR('x')), or use FINAL(answer)"
        )

    def SHOW_VARS(self) -> str:
        """The user's variables and their types."""
        return dialects.show_vars(self._namespace, self._builtin)

    def _is_a_value(self, text: str, caller: dict[str, Any]) -> bool:
        """True if `text` is the very object some variable holds: it was passed as one."""
        scopes = (caller, self._namespace)
        return any(
            value is text
            for scope in scopes
            for name, value in scope.items()
            if not name.startswith("_")
        )

    def _record(self, value: Any, finish: str) -> str:
        if dialects.is_answer_dict(value):
            # FINAL_VAR(answer) on the preset dict: its content is the answer, if any.
            value = value["content"]
            if not str(value).strip():
                raise ValueError('answer["content"] is empty: put the answer in it first')
        text = format_answer(value)
        if len(text) > protocol.FINAL_LIMIT:
            raise ValueError(
                f"FINAL: the answer is {len(text):,} characters, over the limit of "
                f"{protocol.FINAL_LIMIT:,}; give a shorter answer"
            )
        self.final = text
        self.finish = finish
        return text

    def set_context(self, value: Any) -> None:
        """Replace CONTEXT (and `context`): a str, or a list/dict. CONTEXT itself is reserved."""
        if not isinstance(value, str | list | dict):
            raise TypeError(f"CONTEXT must be a str, list or dict, not {type(value).__name__}")
        self.context = value
        self.reserved["CONTEXT"] = self.reserved["context"] = value
        self._namespace["CONTEXT"] = self._namespace["context"] = value
        self._namespace.update(dict.fromkeys(dialects.CONTEXT_ALIASES, value))

    def load_offered_context(self, token: str) -> None:
        """Replace CONTEXT with the one the host offers under `token` (how a pooled kernel
        gets its data)."""
        self.set_context(offered_context(self._require_client(), token, None))

    def _require_client(self) -> CallbackClient:
        if self._client is None:
            raise LLMQueryError("llm_query is not available: this kernel has no callback channel")
        return self._client
