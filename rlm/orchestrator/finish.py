"""How a reply is taken (`plan`: an answer, code to run, or neither), how a run finished,
and the answer of a reply that gave one without a marker.

`Finish` names how an answer came: the value RLMResult.finish and the trace's `final`
and `end` events carry, so a user can tell a marked answer from a prose fallback.

A reply without code may answer in prose. It counts (finish "unmarked") when a line of
its prose starts with "Final answer" (any case) or with FINAL followed by a space or a
colon, the answer being the rest of that line or, if that is empty, the next paragraph.
The reply to the last-chance turn counts whole (its prose, trimmed) when it has neither:
the model was told to answer and did, only unmarked. Prose is what parse_reply left
outside fences, so text quoted in code never counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from rlm.orchestrator import prompts
from rlm.orchestrator.parsing import ParsedReply


class Finish(StrEnum):
    FINAL = "final"  # FINAL(...) in code, or alone in a reply without code
    FINAL_VAR = "final_var"  # FINAL_VAR(...) in code or in prose
    ANSWER_DICT = "answer_dict"  # answer["ready"] = True, with answer["content"]
    UNMARKED = "unmarked"  # a prose answer with no FINAL marker


_LEAD = r"^[ \t>#*_-]*"
_SAID = re.compile(
    _LEAD
    + r"(?:(?i:(?:(?:the|my)[ \t]+)?final[ \t]+answer)(?:[ \t]+is)?"
    + r"|FINAL(?=[ \t]*:|[ \t]+\S))"
    r"[ \t*_]*[:=\-\u2013\u2014]?[ \t*_]*(?P<rest>.*)$",
    re.MULTILINE,
)


def unmarked_answer(prose: str, *, last: bool) -> str | None:
    """The answer a reply without code gives in prose, or None."""
    match = _SAID.search(prose)
    if match is not None:
        rest = _clean(match["rest"])
        if not rest:
            following = prose[match.end() :].strip().split("\n\n", 1)[0]
            rest = _clean(following)
        if rest:
            return rest
    if last:
        return prose.strip() or None
    return None


def _clean(text: str) -> str:
    """Trim emphasis marks and one pair of matching quotes around an answer."""
    text = text.strip().strip("*_").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


@dataclass
class Plan:
    """What the loop does with one parsed reply."""

    answer: str | None = None  # the reply answered without running anything
    finish: Finish | None = None
    blocks: list[str] = field(default_factory=list)  # else: code to run, in order
    note: str | None = None  # something the model must hear in the feedback turn


def plan(reply: ParsedReply, *, last: bool) -> Plan:
    """Decide how a reply is taken: an answer, code to run, or neither.

    A FINAL(...) written in prose next to code is refused (it was written before the code
    ran, so it cannot reflect the output) and the model is told why; a FINAL_VAR(name)
    there is run after the code, since it reads what the code computed.
    """
    final = reply.final
    if reply.code_blocks:
        if final is not None and final.kind == "var":
            return Plan(blocks=[*reply.code_blocks, f"FINAL_VAR({final.value!r})"])
        note = prompts.refused_final_note() if final is not None else None
        return Plan(blocks=reply.code_blocks, note=note)
    if final is None:
        answer = unmarked_answer(reply.prose, last=last)
        return Plan(answer=answer, finish=Finish.UNMARKED if answer is not None else None)
    if final.kind == "answer":
        return Plan(answer=final.value, finish=Finish.FINAL)
    name = repr(final.value)
    if final.kind == "var":
        return Plan(blocks=[f"FINAL_VAR({name})"])
    # FINAL(word): the variable if the model made one, else the word itself.
    return Plan(blocks=[f"FINAL_VAR({name}) if {name} in globals() else FINAL({name})"])
