"""What other RLM runtimes taught models to write, accepted here but never advertised.

- `context_0`, `completion_context`, `session_context_0`: the official runtime's names
  for its (first) context payload. rlm loads one context, so each is CONTEXT itself,
  whatever its type; there is no context_1.
- `rlm_query` / `rlm_query_batched`: recursive sub-calls. llm_query already recurses
  (a child run below max_depth), so they are llm_query and llm_query_batched.
- `SHOW_VARS()`: the user's variables and their types.
- `answer = {"content": "", "ready": False}`: setting answer["ready"] = True finishes
  with answer["content"] once the block has run.
- `await llm_query(...)`, `asyncio.gather(*[llm_query(p) ...])`: the answers are a str
  (a list for llm_query_batched) that can also be awaited. The calls themselves are made
  when llm_query is called, so a gather runs them one after the other; llm_query_batched
  is the concurrent form.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from types import ModuleType
from typing import Any

# The names a NameError's hint lists: the documented ones only.
DOCUMENTED = (
    "CONTEXT",
    "context",
    "llm_query",
    "llm_query_batched",
    "FINAL",
    "FINAL_VAR",
    "re",
    "json",
    "math",
    "collections",
    "itertools",
)
CONTEXT_ALIASES = ("context_0", "completion_context", "session_context_0")


class Answer(str):
    """An llm_query answer: a str that `await` also accepts."""

    def __await__(self) -> Generator[Any, None, str]:
        yield from ()  # a generator that finishes at once: awaiting gives the str
        return self


class Answers(list):
    """llm_query_batched's answers: a list that `await` also accepts."""

    def __await__(self) -> Generator[Any, None, list[str]]:
        yield from ()
        return self


class Listing(str):
    """A str shown as itself when it is a cell's last value (no quotes, real newlines)."""

    def __repr__(self) -> str:
        return str(self)


def preset_answer() -> dict[str, Any]:
    return {"content": "", "ready": False}


def is_answer_dict(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"content", "ready"}


def ready_answer(namespace: dict[str, Any]) -> tuple[bool, Any]:
    """(True, content) when `answer` is the answer dict marked ready with something in it."""
    value = namespace.get("answer")
    if not is_answer_dict(value) or value["ready"] is not True:
        return False, None
    content = value.get("content")
    if content is None or (isinstance(content, str) and not content.strip()):
        return False, None  # "ready" with nothing in it is not an answer
    return True, content


def user_names(namespace: dict[str, Any], builtin: Iterable[str]) -> list[str]:
    """The variables user code defined: not ours, not IPython's, not modules or _private."""
    skip = set(builtin)
    if namespace.get("answer") == preset_answer():
        skip.add("answer")  # still the untouched preset: not something the user made
    return sorted(
        name
        for name, value in namespace.items()
        if name not in skip and not name.startswith("_") and not isinstance(value, ModuleType)
    )


def show_vars(namespace: dict[str, Any], builtin: Iterable[str]) -> Listing:
    names = user_names(namespace, builtin)
    if not names:
        return Listing("No variables defined yet.")
    lines = [f"{name}: {type(namespace[name]).__name__}" for name in names]
    return Listing("Your variables:\n" + "\n".join(lines))


def name_hint(missing: str | None, namespace: dict[str, Any], builtin: Iterable[str]) -> str:
    """What a NameError adds: the REPL's names and the user's variables."""
    if missing is not None and missing.startswith("context_"):
        lead = " (rlm loads one context: CONTEXT, also called context_0)"
    else:
        lead = ""
    names = user_names(namespace, builtin)
    yours = ", ".join(names) if names else "none yet"
    return f"{lead}. The REPL provides {', '.join(DOCUMENTED)}; your variables: {yours}"
