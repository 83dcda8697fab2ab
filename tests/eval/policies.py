"""Scripted models for the fake server that solve the benchmarks by writing real code.

Each policy is a FakeModelServer handler: it reads the prompt and answers as a model
would, with ```repl blocks that search CONTEXT or label records through
llm_query_batched. Sub-calls are answered by applying the benchmark's labeling rule.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from rlm.eval.generators.records import LABELS, label_of
from tests.fakes.model_server import Reply, last_user_text

LABEL_PROMPT = "Give the topic label of each remark, one per line:\n"
_NEEDLE_QUERY = re.compile(r"special magic number for (\S+) mentioned")

# The code every aggregation answer starts from: label all records through sub-calls.
_LABEL_ALL = f"""\
rows = re.findall(r"^Date: (.+?) \\|\\| User: (\\d+) \\|\\| Instance: (.*)$", CONTEXT, re.M)
chunks = [rows[i:i + 100] for i in range(0, len(rows), 100)]
answers = llm_query_batched([{LABEL_PROMPT!r} + "\\n".join(r[2] for r in c) for c in chunks])
labels = [line.strip() for answer in answers for line in answer.splitlines()]
assert len(labels) == len(rows), (len(labels), len(rows))
table = [(date, user, label) for (date, user, _), label in zip(rows, labels)]
LABELS = {list(LABELS)!r}
"""


def repl(code: str) -> str:
    return f"Let me compute it.\n```repl\n{code}\n```"


def needle_search(request: Any) -> str:
    """S-NIAH: a regex over CONTEXT (RLM), or over the prompt itself (baseline)."""
    text = last_user_text(request)
    key = _NEEDLE_QUERY.search(text)
    if key is None:
        return "FINAL(I cannot tell)"
    pattern = f"special magic numbers for {key.group(1)} is: (\\d+)"
    if text.startswith("Query:"):
        return repl(f"m = re.search({pattern!r}, CONTEXT)\nFINAL(m.group(1) if m else 'none')")
    found = re.search(pattern, text)
    return found.group(1) if found else "The text does not say."


def aggregator(request: Any) -> str:
    """OOLONG and pairs: label every record with sub-calls, then aggregate in code."""
    text = last_user_text(request)
    if text.startswith(LABEL_PROMPT):
        return "\n".join(label_of(line) for line in text[len(LABEL_PROMPT) :].splitlines())
    if not text.startswith("Query:"):
        return "FINAL(unexpected turn)"
    return repl(_LABEL_ALL + _answer_code(text) + "\nFINAL(str(answer))")


def _answer_code(query: str) -> str:
    label = re.search(r"labelled '(\w+)'", query)
    user = re.search(r"user (\d+)", query)
    date = re.search(r"dated (.+?) are", query)
    if "pair of user IDs" in query:
        return (
            "by_date = collections.defaultdict(set)\n"
            f"for d, u, l in table:\n    if l == {label.group(1)!r}: by_date[d].add(u)\n"
            "pairs = sorted({p for us in by_date.values() "
            "for p in itertools.combinations(sorted(us), 2)})\n"
            "answer = '\\n'.join(f'({a}, {b})' for a, b in pairs)"
        )
    if "most often among the records of user" in query:
        users_labels = f"[l for d, u, l in table if u == {user.group(1)!r}]"
        return f"answer = collections.Counter({users_labels}).most_common(1)[0][0]"
    if "most often" in query:
        return "answer = collections.Counter(labels).most_common(1)[0][0]"
    if "least often" in query:
        return "answer = min(LABELS, key=labels.count)"
    if user is not None:
        condition = f"u == {user.group(1)!r} and l == {label.group(1)!r}"
    elif date is not None:
        condition = f"d == {date.group(1)!r} and l == {label.group(1)!r}"
    else:
        condition = f"l == {label.group(1)!r}"
    return f"answer = sum(1 for d, u, l in table if {condition})"


class AnswersThenHangs:
    """needle_search for the first `answered` root calls; later ones never answer (until the
    server stops), so a run can be stopped while a task is in flight. `calls` counts them."""

    def __init__(self, answered: int) -> None:
        self.answered = answered
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> str | Reply:
        with self._lock:
            self.calls += 1
            hang = self.calls > self.answered
        return Reply(text="FINAL(late)", delay_s=60) if hang else needle_search(request)
