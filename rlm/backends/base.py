"""The contract every model backend fulfils, and the small types it returns.

The orchestrator talks to models only through `Backend`: it sends a list of chat
messages and gets back a `Completion` with the text, the tokens spent and their cost.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

Message = dict[str, str]
"""One chat turn: ``{"role": "user" | "assistant", "content": str}``."""

T = TypeVar("T")


@dataclass
class Usage:
    """Tokens one or more calls consumed, and what they cost.

    The three input counts are disjoint, so the whole prompt is their sum:
    `input_tokens` were billed at the normal rate, `cache_read_tokens` were served
    from the provider's prompt cache and `cache_write_tokens` were stored into it.

    `cost_usd` is None when the cost is unknown (a model missing from the price
    table); it is never guessed as 0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None

    @property
    def is_empty(self) -> bool:
        """True when no tokens were counted and no cost is known."""
        return self.cost_usd is None and not (
            self.input_tokens
            or self.output_tokens
            or self.cache_read_tokens
            or self.cache_write_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        """Sum two usages. Unknown stays unknown: if a part that consumed tokens has
        an unknown cost, the total cost is unknown too. An empty `Usage()` is neutral,
        so ``sum(usages, Usage())`` and ``sum(usages)`` both work."""
        if not isinstance(other, Usage):
            return NotImplemented
        if self.is_empty:
            return replace(other)
        if other.is_empty:
            return replace(self)
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=cost,
        )

    def __radd__(self, other: object) -> Usage:
        # `sum()` starts from the integer 0.
        if other == 0:
            return replace(self)
        return NotImplemented


@dataclass
class Completion:
    """One model answer."""

    text: str
    usage: Usage
    model: str
    """The model that answered, as the endpoint reported it."""
    latency_s: float
    """Wall-clock seconds the call took, retries included."""


class Backend(ABC):
    """A way to reach a language model.

    Subclasses implement `acomplete`; `complete` is a thin synchronous layer over it.
    Every failure a user can act on is raised as a subclass of
    `rlm.errors.BackendError`.
    """

    name: str
    """Short label used in traces and cost summaries (e.g. ``"anthropic"``)."""

    @abstractmethod
    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Send `messages` (oldest first, ending with a user turn) to `model`.

        Called by the orchestrator for every root and recursive query. `system` is
        the system prompt; `max_tokens` caps the answer (None: the backend's
        default). Must return a `Completion` whose usage is filled in, or raise a
        `BackendError`.
        """

    def complete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Blocking variant of `acomplete`, callable from any thread, even one that
        runs an event loop."""
        return run_in_fresh_loop(
            self.acomplete(messages, model, system=system, max_tokens=max_tokens)
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections or threads. The backend must not be used afterwards."""

    def close(self) -> None:
        """Blocking variant of `aclose`."""
        run_in_fresh_loop(self.aclose())


LLMBackend = Backend
"""The name the RLM specification gives the backend base class; the same class."""


def run_in_fresh_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a new event loop in a helper thread.

    A helper thread is used because the calling thread may already run a loop
    (`asyncio.run` refuses to nest), e.g. a Jupyter callback or an async test.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlm-backend-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
