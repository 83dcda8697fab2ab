"""Reading a model reply: the code blocks to run, and a FINAL written outside code.

Runnable blocks are fenced with ```repl, ```python, ```python3 or ```py; other fences
(```text, a bare ```) are prose. A FINAL written as text counts only when the reply has
no runnable block and the marker starts a line outside every fence:

    FINAL(answer text)        -> the answer; a quoted literal is unquoted
    FINAL_VAR(name)           -> the loop evaluates FINAL_VAR('name') in the sandbox

With code present, a textual FINAL is ignored: it was written before the code ran, so
it cannot reflect the output. A FINAL inside code is the kernel's business: it reports
the answer in ExecuteResult.final.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

RUNNABLE = frozenset({"repl", "python", "python3", "py"})

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^[ \t]*```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_MARKER = re.compile(r"^[ \t]*(?P<kind>FINAL_VAR|FINAL)\(", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class TextFinal:
    """A FINAL written outside code: an answer, or the name of a variable to read."""

    kind: str  # "answer" or "var"
    value: str


@dataclass(frozen=True)
class ParsedReply:
    code_blocks: list[str]
    final: TextFinal | None


def parse_reply(text: str) -> ParsedReply:
    blocks = [
        match["code"].rstrip()
        for match in _FENCE.finditer(text)
        if match["lang"].lower() in RUNNABLE and match["code"].strip()
    ]
    if blocks:
        return ParsedReply(blocks, None)
    return ParsedReply([], _text_final(_FENCE.sub("", text)))


def _text_final(prose: str) -> TextFinal | None:
    match = _MARKER.search(prose)
    if match is None:
        return None
    inner = _balanced(prose[match.end() :]).strip()
    if match["kind"] == "FINAL_VAR":
        name = _unquote(inner).strip()
        return TextFinal("var", name) if _NAME.fullmatch(name) else None
    return TextFinal("answer", _unquote(inner))


def _balanced(rest: str) -> str:
    """The text up to the parenthesis closing the marker's; to the last ')' if none does."""
    depth = 1
    for index, char in enumerate(rest):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return rest[:index]
    end = rest.rfind(")")
    return rest[:end] if end >= 0 else rest


def _unquote(text: str) -> str:
    """'"42"' -> '42'; anything that is not a single string literal is kept as written."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, str) else text
