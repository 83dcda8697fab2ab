"""One RLM loop: a model writing code against CONTEXT in its own sandbox until FINAL.

The root of a completion is a Run at depth 0. Its kernel's llm_query calls are sub-calls
at depth 1; in general a sub-call from a run at depth d runs at depth d + 1 and is

- a child Run (own sandbox, CONTEXT = the sub-prompt) while d + 1 < max_depth,
- a plain model call when d + 1 == max_depth,
- refused when d + 1 > max_depth (only possible with max_depth = 0).

So max_depth=1 makes every llm_query a plain model call, and max_depth=2 gives the
root's sub-calls child runs whose own sub-calls are plain calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from rlm.errors import BackendError, ContextFileError, RLMError
from rlm.orchestrator import feedback, prompts
from rlm.orchestrator.budget import BudgetExceeded
from rlm.orchestrator.events import preview
from rlm.orchestrator.finish import Finish, plan
from rlm.orchestrator.parsing import parse_reply
from rlm.orchestrator.tree import RunTree
from rlm.sandbox import ContextFile, ExecuteResult, LLMRequest, Sandbox

log = logging.getLogger(__name__)


class ChildRunFailed(RLMError):
    """A child run serving an llm_query ended without an answer."""


@dataclass
class Outcome:
    answer: str
    success: bool
    error: str | None
    history: list[dict[str, Any]]
    kind: str | None = None
    """Why a failed run failed: the `kind` of its error event."""
    budget: str | None = None
    finish: Finish | None = None
    """How a successful run's answer was given (rlm.orchestrator.finish)."""


class Run:
    def __init__(
        self, tree: RunTree, *, depth: int, model: str, parent_id: str | None = None
    ) -> None:
        self.tree = tree
        self.depth = depth
        self.model = model
        self.parent_id = parent_id
        self.id = uuid.uuid4().hex[:12]
        self.history: list[dict[str, Any]] = []
        # The best answer so far if the run is stopped: a FINAL the budget overruled,
        # else the last output the code printed.
        self.partial = ""
        # The history entry of the step in progress, where its sub-calls are recorded.
        self._entry: dict[str, Any] = {}

    async def solve(self, context: Any, query: str) -> Outcome:
        """Run the loop to an outcome. Only cancellation escapes, and the ContextFileError
        of an unchecked ContextFile (a caller's input, like a context of the wrong type);
        the sandbox is released."""
        sandbox: Sandbox | None = None
        failed: Exception | None = None
        if isinstance(context, ContextFile) and not context.checked:
            # Its sandbox checks and counts the file while the kernel starts: the run is
            # described once that is done (or, if the start failed otherwise, once checked
            # here, to report that failure as the run's).
            try:
                sandbox = await self.tree.sandboxes.acquire(context, self._sub_call, self.depth)
                context = sandbox.context_file
            except ContextFileError:
                raise
            except Exception as exc:
                failed = exc
                context = await asyncio.to_thread(ContextFile.check, context.path)
        description, kind, chars = prompts.describe_context(context)
        settings = self.tree.settings
        self._emit(
            "start",
            query=query,
            model=self.model,
            context_type=kind,
            context_chars=chars,
            max_iterations=settings.max_iterations,
            max_depth=settings.max_depth,
        )
        try:
            if failed is not None:
                raise failed
            if sandbox is None:
                sandbox = await self.tree.sandboxes.acquire(context, self._sub_call, self.depth)
            self._emit("sandbox_open", container_id=sandbox.container_id)
            system = prompts.system_prompt(
                description,
                kind,
                max_iterations=settings.max_iterations,
                compact=settings.compact_prompt,
            )
            outcome = await self._loop(sandbox, system, query)
        except BudgetExceeded as exc:
            outcome = self._failure(str(exc), "budget", exc.budget)
        except BackendError as exc:
            outcome = self._failure(f"the model call failed: {_describe(exc)}", "model")
        except Exception as exc:
            # Sandbox failures and anything unexpected end the run, never the caller; the
            # traceback goes to the log (shown by the CLI with RLM_DEBUG=1).
            log.debug("run %s (depth %d) failed", self.id, self.depth, exc_info=True)
            outcome = self._failure(f"the run failed: {_describe(exc)}", "internal")
        finally:
            if sandbox is not None:
                container_id = sandbox.container_id  # unknown once the sandbox is closed
                await self.tree.sandboxes.release(sandbox, self.depth)
                self._emit("sandbox_close", container_id=container_id)
        # Told only now, so that a finished run has given back its sandbox.
        self._report(outcome)
        return outcome

    def fail(self, error: str, kind: str, budget: str | None = None) -> Outcome:
        """End without success, keeping the best partial answer."""
        outcome = self._failure(error, kind, budget)
        self._report(outcome)
        return outcome

    def _failure(self, error: str, kind: str, budget: str | None = None) -> Outcome:
        return Outcome(self.partial, False, error, self.history, kind, budget)

    def _report(self, outcome: Outcome) -> None:
        """The run's last event: its final answer or its error."""
        if outcome.success:
            self._emit(
                "final",
                iteration=self.history[-1]["iteration"],
                answer=outcome.answer,
                finish=outcome.finish,
            )
            return
        self._emit(
            "error",
            iteration=len(self.history),
            error=outcome.error,
            kind=outcome.kind,
            budget=outcome.budget,
            partial_answer=outcome.answer,
        )

    # --- the loop --------------------------------------------------------------------

    async def _loop(self, sandbox: Sandbox, system: str, query: str) -> Outcome:
        settings = self.tree.settings
        messages = [{"role": "user", "content": prompts.first_turn(query)}]
        for iteration in range(1, settings.max_iterations + 1):
            if self.depth == 0:
                self.tree.stats.iterations += 1
            answer = await self._step(
                sandbox, system, messages, iteration, settings.max_iterations - iteration
            )
            if answer is not None:
                return self._succeed(*answer)
        # One last call asks for the answer; it shares the last user turn so roles alternate.
        messages[-1]["content"] += "\n\n" + prompts.last_chance_turn()
        last = settings.max_iterations + 1
        answer = await self._step(sandbox, system, messages, last, 0, last=True)
        if answer is not None:
            return self._succeed(*answer)
        return self._failure(
            f"max_iterations={settings.max_iterations} reached without a final answer",
            "max_iterations",
            "max_iterations",
        )

    async def _step(
        self,
        sandbox: Sandbox,
        system: str,
        messages: list[dict[str, str]],
        iteration: int,
        replies_left: int,
        *,
        last: bool = False,
    ) -> tuple[str, Finish] | None:
        """One model reply and its code; returns the final answer if the reply gave one."""
        completion = await self.tree.call_model(
            messages, self.model, system=system, root=self.depth == 0
        )
        reply = parse_reply(completion.text)
        usage = completion.usage
        self._entry = {
            "iteration": iteration,
            "response": completion.text,
            "code_blocks": reply.code_blocks,
            "outputs": [],
            "sub_calls": [],
            "final": None,
            "model_time_s": completion.latency_s,
            "sandbox_time_s": 0.0,
            "usage": asdict(usage),
        }
        self.history.append(self._entry)
        self._emit(
            "model_response",
            iteration=iteration,
            text=completion.text,
            code_blocks=reply.code_blocks,
            model=self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cost_usd=usage.cost_usd,
            latency_s=completion.latency_s,
        )
        messages.append({"role": "assistant", "content": completion.text})
        taken = plan(reply, last=last)
        if taken.answer is not None and taken.finish is not None:
            return taken.answer, taken.finish
        if not taken.blocks:
            messages.append({"role": "user", "content": prompts.no_code_turn(replies_left)})
            return None

        outputs, answer = await self._run_blocks(sandbox, taken.blocks, iteration)
        if self.tree.budget.exceeded is not None:
            # A limit was hit while the code ran: even a FINAL reached now is partial.
            self.partial = answer[0] if answer is not None else self.partial
            raise self.tree.budget.exceeded
        if answer is None:
            turn = prompts.feedback_turn(outputs, replies_left)
            if taken.note is not None:
                turn = f"{taken.note}\n\n{turn}"
            messages.append({"role": "user", "content": turn})
        return answer

    async def _run_blocks(
        self, sandbox: Sandbox, blocks: list[str], iteration: int
    ) -> tuple[list[str], tuple[str, Finish] | None]:
        """Execute blocks in order until one finishes the run or fails."""
        limit = max(self.tree.settings.max_output_chars // len(blocks), 1000)
        outputs: list[str] = []
        for index, code in enumerate(blocks, 1):
            result = await sandbox.execute(code)
            self._record_execute(iteration, index, code, result)
            outputs.append(feedback.block_output(index, result, limit))
            if result.final is not None:
                return outputs, (result.final, _finish_of(result))
            if result.error is not None and index < len(blocks):
                # Later blocks usually build on this one; running them would only pile
                # up follow-on errors (or spend sub-calls on bad data).
                skipped = (
                    f"block {index + 1} was"
                    if index + 1 == len(blocks)
                    else f"blocks {index + 1} to {len(blocks)} were"
                )
                outputs.append(f"[{skipped} not run because block {index} failed]")
                break
        return outputs, None

    def _record_execute(self, iteration: int, index: int, code: str, result: ExecuteResult) -> None:
        self.tree.stats.sandbox_time_s += result.duration
        self._entry["sandbox_time_s"] += result.duration
        printed = "\n".join(filter(None, [result.stdout.strip(), *result.results]))
        if printed:
            self.partial = printed
        error = asdict(result.error) if result.error is not None else None
        record = {
            "block": index,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "results": result.results,
            "error": error,
            "final": result.final,
            "duration_s": result.duration,
            "dropped_chars": result.dropped_chars,
            "timed_out": result.timed_out,
            "restarted": result.restarted,
        }
        self._entry["outputs"].append(record)
        self._emit("execute", iteration=iteration, code=code, **record)

    def _succeed(self, answer: str, finish: Finish) -> Outcome:
        self.history[-1]["final"] = answer
        self.history[-1]["finish"] = finish.value
        return Outcome(answer, True, None, self.history, finish=finish)

    # --- sub-calls -------------------------------------------------------------------

    async def _sub_call(self, request: LLMRequest) -> str:
        """The sandbox's llm_handler: serve one llm_query from this run's code."""
        tree = self.tree
        settings = tree.settings
        depth = self.depth + 1
        model = request.model or settings.recursive_model
        kind = "rlm" if depth < settings.max_depth else "model"
        entry, iteration = self._entry, len(self.history)
        started = time.monotonic()
        answer, error, child_id, usage = "", None, None, None
        # sub_call_start is emitted when the call runs, not while it waits for a child slot
        # (progress counts it as running from there); a call refused before it ran still
        # pairs its start and its end.
        began = False
        try:
            if depth > settings.max_depth:
                raise RuntimeError("llm_query is disabled (max_depth=0)")
            if model not in settings.allowed_models:
                allowed = ", ".join(sorted(settings.allowed_models))
                raise ValueError(f"llm_query may not use model {model!r}; allowed: {allowed}")
            tree.budget.start_sub_call()
            tree.stats.add_sub_call(depth, child_run=kind == "rlm")
            if kind == "rlm":
                async with tree.child_slot(depth):
                    began = True
                    self._sub_call_start(iteration, kind, model, depth, request)
                    child = Run(tree, depth=depth, model=model, parent_id=self.id)
                    child_id = child.id
                    outcome = await child.solve(request.prompt, prompts.CHILD_QUERY)
                if not outcome.success:
                    raise ChildRunFailed(f"the child run failed: {outcome.error}")
                answer = outcome.answer
            else:
                began = True
                self._sub_call_start(iteration, kind, model, depth, request)
                messages = [{"role": "user", "content": request.prompt}]
                completion = await tree.call_model(messages, model, system=None, root=False)
                # Usage holds only numbers: a shallow copy is asdict's result at a fifth of
                # its cost, which counts on a zero-latency model's round trip.
                answer, usage = completion.text, dict(vars(completion.usage))
            return answer
        except BaseException as exc:
            error = "cancelled" if isinstance(exc, asyncio.CancelledError) else _describe(exc)
            raise
        finally:
            if not began:
                self._sub_call_start(iteration, kind, model, depth, request)
            record = {
                "kind": kind,
                "model": model,
                "sub_depth": depth,
                "batch_index": request.batch_index,
                "prompt_preview": preview(request.prompt),
                "prompt_chars": len(request.prompt),
                "answer_preview": preview(answer),
                "answer_chars": len(answer),
                "error": error,
                "duration_s": time.monotonic() - started,
                "child_run_id": child_id,
                "usage": usage,
            }
            entry["sub_calls"].append(record)
            # Events are built only for a listener: the two of a sub-call were half of a
            # zero-latency sub-call's time.
            if tree.sinks:
                self._emit("sub_call", iteration=iteration, **record)

    def _sub_call_start(
        self, iteration: int, kind: str, model: str, depth: int, request: LLMRequest
    ) -> None:
        if self.tree.sinks:
            self._emit(
                "sub_call_start",
                iteration=iteration,
                kind=kind,
                model=model,
                sub_depth=depth,
                batch_index=request.batch_index,
            )

    def _emit(self, event_type: str, /, **fields: Any) -> None:
        self.tree.emit(
            event_type, run_id=self.id, parent_id=self.parent_id, depth=self.depth, **fields
        )


def _finish_of(result: ExecuteResult) -> Finish:
    try:
        return Finish(result.finish)
    except ValueError:  # a kernel that does not say: it can only have been FINAL
        return Finish.FINAL


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
