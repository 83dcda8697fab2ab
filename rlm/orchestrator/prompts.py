"""Every text the orchestrator sends to a model, in one place.

The system prompt tells the model what CONTEXT is (its type and size, never its content),
what the REPL offers, how code is fenced, how to finish and how to chunk. The other
texts are the user turns of the loop.
"""

from __future__ import annotations

import json
from typing import Any

from rlm.sandbox.context_file import ContextFile

_FULL = """\
You answer a query about data that is too large for you to read directly. The data is \
loaded in a Python REPL as the variable CONTEXT: {description}. You see none of it \
unless your code prints it.

Write Python in fenced blocks opened with ```repl (```python also works). The blocks of \
a reply run in order in the same REPL; variables persist across blocks and replies. \
After each reply you get back what every block printed, its last expression's value \
and any error. Long outputs are cut, so print lengths, counts and short slices rather \
than whole texts.

The REPL provides:
- CONTEXT (also `context`): the data, {kind}.
- llm_query(prompt, model=None) -> str: ask another language model. It sees only the \
prompt you pass, so put the text it must read into the prompt. It handles prompts of \
roughly 100,000 characters well.
- llm_query_batched(prompts, model=None) -> list[str]: ask many prompts at once; they \
run concurrently and the answers come back in the same order. A prompt that failed \
gives a string starting with "[llm_query failed:" instead.
- FINAL(answer): finish the task with `answer` (a string).
- FINAL_VAR(name): finish with the value of the variable called `name` (pass the name \
as a string, e.g. FINAL_VAR("summary")).
- The modules re, json, math, collections and itertools, already imported; numpy and \
pandas are installed (import them if you need them).

A good way to work:
1. Look before you read: check the type and length, print short slices, find the \
structure (headings, separators, record boundaries).
2. When you know what to look for, search with code (re, string methods) instead of \
reading.
3. When the answer needs much of the text, split CONTEXT into chunks (natural sections, \
or about 50,000 characters each), ask one question per chunk with llm_query_batched, \
then combine the answers in code or with one more llm_query.
4. Check the answer against what you found, then call FINAL or FINAL_VAR inside a \
```repl block. The run ends after the block that calls it.

For example, over two replies:
```repl
size = 50_000
chunks = [CONTEXT[i:i + size] for i in range(0, len(CONTEXT), size)]
found = llm_query_batched([f"List the dates this text mentions:\\n{{c}}" for c in chunks])
print(len(chunks), found[:2])
```
```repl
answer = llm_query("Merge these lists of dates, earliest first:\\n" + "\\n".join(found))
FINAL_VAR("answer")
```

Never print CONTEXT whole. You have {max_iterations} replies. Only FINAL or FINAL_VAR \
ends the task; a reply without any code block may instead be FINAL(your answer) on a \
line of its own."""

_COMPACT = """\
Answer the query using a Python REPL. CONTEXT holds the data ({description}); you see \
only what your code prints, and long output is cut. Write code in ```repl blocks; they \
run in order and variables persist. Available: llm_query(prompt) -> str asks a model \
that sees only the prompt; llm_query_batched(prompts) -> list[str] runs many prompts \
concurrently (use it on chunks of CONTEXT, then combine the answers); re, json, math, \
collections, itertools (imported), numpy and pandas (installed). Finish inside a ```repl \
block with FINAL(answer) or \
FINAL_VAR("variable_name"). You have {max_iterations} replies."""

KEYS_SHOWN = 5
KEY_CHARS_SHOWN = 80

CHILD_QUERY = (
    "CONTEXT is a request another model sent you. Carry it out and give the result with "
    "FINAL(...) or FINAL_VAR(...)."
)


def describe_context(context: Any) -> tuple[str, str, int]:
    """(description for the prompt, type name, size in characters) of a context."""
    if isinstance(context, str):
        lines = context.count("\n") + 1 if context else 0
        return f"a str of {len(context):,} characters in {lines:,} lines", "str", len(context)
    if isinstance(context, ContextFile):
        chars, lines = context.chars, context.lines
        return f"a str of {chars:,} characters in {lines:,} lines", "str", chars
    size = len(json.dumps(context, ensure_ascii=False))
    if isinstance(context, list):
        kinds = sorted({type(item).__name__ for item in context})
        of = f" of {'/'.join(kinds)}" if kinds else ""
        return (
            f"a list of {len(context):,} items{of}, {size:,} characters as JSON",
            "list",
            size,
        )
    if isinstance(context, dict):
        return f"a dict of {_describe_entries(context)}, {size:,} characters as JSON", "dict", size
    raise TypeError(f"context must be a str, list or dict, not {type(context).__name__}")


def _describe_entries(context: dict[Any, Any]) -> str:
    """How many entries, of which types, and the first few keys: keys name the parts (a
    directory's file paths), which the model needs to say where an answer came from."""
    if not context:
        return "0 keys"
    keys = "/".join(sorted({type(key).__name__ for key in context}))
    values = "/".join(sorted({type(value).__name__ for value in context.values()}))
    shown = ", ".join(repr(key)[:KEY_CHARS_SHOWN] for key in list(context)[:KEYS_SHOWN])
    more = ", ..." if len(context) > KEYS_SHOWN else ""
    return f"{len(context):,} {keys} keys ({shown}{more}) mapping to {values} values"


def system_prompt(description: str, kind: str, *, max_iterations: int, compact: bool) -> str:
    """The root model's instructions, from describe_context's description and type name."""
    template = _COMPACT if compact else _FULL
    return template.format(description=description, kind=f"a {kind}", max_iterations=max_iterations)


def first_turn(query: str) -> str:
    return f"Query: {query}\n\nStart by writing code that examines CONTEXT."


def feedback_turn(outputs: list[str], replies_left: int) -> str:
    body = "\n\n".join(outputs)
    return f"{body}\n\nReplies left: {replies_left}. Continue, or finish with FINAL/FINAL_VAR."


def no_code_turn(replies_left: int) -> str:
    return (
        "Your reply had no ```repl code block and no FINAL(...) line, so nothing ran. Write "
        "code that examines CONTEXT, or finish with FINAL(your answer). "
        f"Replies left: {replies_left}."
    )


def refused_final_note() -> str:
    return (
        "Your FINAL(...) outside the code blocks was not taken: it was written before the "
        "code ran, so it cannot reflect the output above. If the output confirms it, call "
        "FINAL(...) inside a ```repl block, or reply with only FINAL(your answer)."
    )


def last_chance_turn() -> str:
    return (
        "You have no replies left. Give your final answer now: a ```repl block that calls "
        "FINAL(...) or FINAL_VAR(...), or FINAL(your answer) alone on a line."
    )
