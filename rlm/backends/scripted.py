"""A backend that answers from a script, in-process: for tests and examples only."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from rlm.backends.base import Backend, Completion, Message, Usage
from rlm.errors import BackendError

Responder = Callable[[list[Message], str], "str | Awaitable[str]"]


@dataclass
class ScriptedCall:
    """What one call received."""

    messages: list[Message]
    model: str
    system: str | None
    max_tokens: int | None


class ScriptedBackend(Backend):
    """For tests and examples, not for real use: no model is involved.

    `script` is either a sequence of replies, returned in order (an exception in it
    is raised instead, to simulate a failing backend; running out raises
    BackendError), or a function ``(messages, model) -> str``, sync or async.

    Every call is recorded in `calls`. Usage is plausible rather than real: about one
    token per four characters in and out, and `cost_per_call` USD (None: unknown).
    """

    name = "scripted"

    def __init__(
        self,
        script: Iterable[str | BaseException] | Responder,
        *,
        cost_per_call: float | None = 0.0,
    ) -> None:
        self._responder = script if callable(script) else None
        self._replies: deque[str | BaseException] = deque() if callable(script) else deque(script)
        self._lock = threading.Lock()  # complete() may be called from several threads
        self._cost_per_call = cost_per_call
        self.calls: list[ScriptedCall] = []

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        started = time.monotonic()
        with self._lock:
            self.calls.append(ScriptedCall(list(messages), model, system, max_tokens))
            call_number = len(self.calls)
            reply = self._replies.popleft() if self._replies else None
        if self._responder is not None:
            answer = self._responder(messages, model)
            text = answer if isinstance(answer, str) else await answer
        elif reply is None:
            raise BackendError(f"ScriptedBackend has no reply left for call {call_number}")
        elif isinstance(reply, BaseException):
            raise reply
        else:
            text = reply
        prompt = (system or "") + "".join(m["content"] for m in messages)
        usage = Usage(
            input_tokens=len(prompt) // 4,
            output_tokens=len(text) // 4,
            cost_usd=self._cost_per_call,
        )
        return Completion(text=text, usage=usage, model=model, latency_s=time.monotonic() - started)
