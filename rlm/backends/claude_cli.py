"""Claude through the Claude Code command-line tool, for users logged in to it
rather than holding an API key."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from typing import Any

from rlm.backends._sdk import DEFAULT_TIMEOUT_S, PROMPT_TOO_LONG, token_count
from rlm.backends.base import Backend, Completion, Message, Usage
from rlm.backends.pricing import PricesArg, resolve_prices
from rlm.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    ClaudeCLINotFoundError,
    MalformedResponseError,
    PromptTooLongError,
)

_NOT_LOGGED_IN = re.compile(r"invalid api key|/login|not logged in|authenticat", re.IGNORECASE)


class ClaudeCLIBackend(Backend):
    """Runs ``claude -p --output-format json --model MODEL`` once per call, the prompt
    on stdin, and reads the answer, usage and ``total_cost_usd`` from its JSON.

    The tool is single-turn: a conversation is sent as one transcript, and the system
    prompt via ``--system-prompt``. It has no output cap, so `max_tokens` is ignored.
    A call running longer than `timeout` seconds is killed.
    """

    name = "claude"

    def __init__(
        self,
        *,
        executable: str = "claude",
        timeout: float = DEFAULT_TIMEOUT_S,
        prices: PricesArg = None,
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise ClaudeCLINotFoundError(
                f"{executable!r} is not on PATH: install Claude Code "
                "(npm install -g @anthropic-ai/claude-code) and log in, "
                "or choose another backend"
            )
        self._path = path
        self._timeout = timeout
        self._prices = resolve_prices(prices)

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        args = [self._path, "-p", "--output-format", "json", "--model", model]
        if system:
            args += ["--system-prompt", system]
        started = time.monotonic()
        stdout, stderr, returncode = await self._run(args, _transcript(messages))
        text, usage = self._parse(stdout, stderr, returncode, model)
        return Completion(text=text, usage=usage, model=model, latency_s=time.monotonic() - started)

    async def _run(self, args: list[str], prompt: str) -> tuple[bytes, bytes, int]:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(prompt.encode()), self._timeout
            )
        except TimeoutError:
            raise BackendTimeoutError(
                f"{self._path} did not answer within {self._timeout:g} s"
            ) from None
        finally:
            # On timeout or cancellation the process is still running: don't leak it.
            if process.returncode is None:
                process.kill()
                await process.wait()
        return stdout, stderr, await process.wait()  # already exited: returns at once

    def _parse(
        self, stdout: bytes, stderr: bytes, returncode: int, model: str
    ) -> tuple[str, Usage]:
        try:
            data: Any = json.loads(stdout)
        except json.JSONDecodeError:
            # No JSON at all: a crash or a usage error, explained on stderr.
            if returncode != 0:
                detail = stderr.decode(errors="replace").strip()[-2000:]
                raise BackendError(f"{self._path} exited with {returncode}: {detail}") from None
            raise MalformedResponseError(
                f"{self._path} printed no JSON: {stdout[:200]!r}"
            ) from None
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"{self._path} printed {type(data).__name__}, not an object"
            )
        if data.get("is_error"):
            raise _error_from_result(
                str(data.get("result") or data.get("subtype") or "unknown error")
            )
        result, usage = data.get("result"), data.get("usage")
        if not isinstance(result, str) or not isinstance(usage, dict):
            raise MalformedResponseError(f"{self._path} printed JSON without result or usage")
        where = self._path
        tokens = Usage(
            input_tokens=token_count(usage.get("input_tokens"), "input_tokens", where),
            output_tokens=token_count(usage.get("output_tokens"), "output_tokens", where),
            cache_read_tokens=token_count(
                usage.get("cache_read_input_tokens") or 0, "cache_read_input_tokens", where
            ),
            cache_write_tokens=token_count(
                usage.get("cache_creation_input_tokens") or 0, "cache_creation_input_tokens", where
            ),
        )
        cost = data.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            tokens.cost_usd = float(cost)
        else:
            tokens.cost_usd = self._prices.cost(model, tokens)
        return result, tokens


def _error_from_result(message: str) -> BackendError:
    if PROMPT_TOO_LONG.search(message):
        return PromptTooLongError(f"the prompt does not fit the model: {message}")
    if _NOT_LOGGED_IN.search(message):
        return AuthenticationError(
            f"the claude CLI is not logged in ({message}): run `claude` to log in "
            "or set ANTHROPIC_API_KEY"
        )
    return BackendError(f"the claude CLI reported an error: {message}")


def _transcript(messages: list[Message]) -> str:
    """The conversation as one prompt; a lone user message is sent as it is."""
    if len(messages) == 1:
        return messages[0]["content"]
    turns = "\n\n".join(f"<{m['role']}>\n{m['content']}\n</{m['role']}>" for m in messages)
    return (
        "Below is a conversation so far. Reply as the assistant to its last user "
        f"message; write only that reply.\n\n{turns}"
    )
