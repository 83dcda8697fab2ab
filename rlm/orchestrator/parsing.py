"""Reading a model reply: the code blocks to run, the prose around them, and a FINAL
written in that prose.

Fences are read as CommonMark does (markdown-it): a longer closer (````) closes a fence,
and a fence left open runs to the end of the reply. A block runs when its label (the
first word of the info string, trailing punctuation dropped) is repl, python, python3,
py or ipython; a fence with another label that names no other language (```pez,
a typo) runs only if its body parses as Python statements that do something. A bare
fence, an indented block and a ```text/```json/... fence never run: models quote output
and plans in them.

A reasoning model's <think>...</think> section is dropped first: nothing in it runs or
finishes. A marker counts only in prose, starting a line (after quote or emphasis marks), never
inside a fence, an indented block or backticks:

    FINAL(answer text)   -> the answer; a quoted literal is unquoted; a bare identifier
                            is the variable of that name if the REPL has one
    FINAL_VAR(name)      -> the value of that variable, read in the sandbox

What the loop does with a marker written next to code is its business (run.py).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

RUNNABLE = frozenset({"repl", "python", "python3", "py", "py3", "ipython", "ipython3"})
# Labels of fences that hold something other than Python: never run, whatever they hold.
NOT_PYTHON = frozenset(
    {
        "text", "txt", "plaintext", "plain", "output", "out", "result", "console", "log",
        "bash", "sh", "shell", "zsh", "json", "jsonl", "yaml", "yml", "toml", "ini", "csv",
        "tsv", "markdown", "md", "html", "xml", "sql", "diff", "javascript", "js",
        "typescript", "ts", "c", "cpp", "java", "go", "rust", "r", "ruby", "latex", "tex",
        "math", "mermaid",
    }
)  # fmt: skip

# Without HTML blocks: a line like <think> or <answer> would otherwise swallow the fence
# that follows it, up to the next blank line.
_MARKDOWN = MarkdownIt("commonmark").disable("html_block")
# A reasoning model's thinking: drafts, not the reply. Nothing in it runs or finishes.
_THINKING = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(r"[A-Za-z0-9_+-]*")
_MARKER = re.compile(r"^[ \t>*_]*(?P<kind>FINAL_VAR|FINAL)[ \t]*\(", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_]\w*")
# Statements that act: a model's code has at least one; quoted output or a plan rarely does.
_ACTING = (
    ast.Assign, ast.AugAssign, ast.Import, ast.ImportFrom, ast.For, ast.While, ast.If,
    ast.With, ast.FunctionDef, ast.AsyncFunctionDef, ast.Try, ast.ClassDef,
)  # fmt: skip


@dataclass(frozen=True)
class TextFinal:
    """A FINAL written in prose.

    kind: "answer" (the text itself), "var" (FINAL_VAR: the variable `value` names), or
    "name" (FINAL(identifier): that variable if the REPL has it, else the text).
    """

    kind: str
    value: str


@dataclass(frozen=True)
class ParsedReply:
    code_blocks: list[str]
    final: TextFinal | None
    prose: str  # the reply without its fences and indented blocks


def parse_reply(text: str) -> ParsedReply:
    text = _THINKING.sub("", text)
    lines = text.splitlines()
    blocks: list[str] = []
    quoted: set[int] = set()
    for token in _MARKDOWN.parse(text):
        if token.type not in ("fence", "code_block") or token.map is None:
            continue
        quoted.update(range(*token.map))
        label = _LABEL.match(token.info.strip())[0].lower()  # type: ignore[index]
        code = token.content.rstrip()
        if token.type == "fence" and code.strip() and _runs(label, code):
            blocks.append(code)
    prose = "\n".join(line for number, line in enumerate(lines) if number not in quoted)
    return ParsedReply(blocks, _text_final(prose), prose)


def _runs(label: str, code: str) -> bool:
    if label in RUNNABLE:
        return True
    if not label or label in NOT_PYTHON:
        return False
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(
        isinstance(node, _ACTING)
        or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await))
        for node in tree.body
    )


def _text_final(prose: str) -> TextFinal | None:
    match = _MARKER.search(prose)
    if match is None:
        return None
    inner = _balanced(prose[match.end() :]).strip()
    value = _unquote(inner).strip()
    if match["kind"] == "FINAL_VAR":
        return TextFinal("var", value) if _NAME.fullmatch(value) else None
    if value == inner and _NAME.fullmatch(inner):
        return TextFinal("name", inner)
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
