"""RLMShell: IPython's shell with the per-execute work an rlm kernel does not need removed.

ipykernel transforms each cell twice (once to decide whether it needs a coroutine runner,
once more to run it), and IPython compiles each cell once only to look for a top-level
`await`. Both are a large part of a short cell's time in the kernel.
"""

from __future__ import annotations

from typing import Any

from ipykernel.zmqshell import ZMQInteractiveShell


def may_run_async(cell: str) -> bool:
    """False when `cell` surely has no top-level `await`, `async for` or `async with`:
    each spells one of these words, and without them there is nothing to look for."""
    return "await" in cell or "async" in cell


class RLMShell(ZMQInteractiveShell):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transformed: tuple[str, str] | None = None

    def forget_transform(self) -> None:
        """Called before each execute: a transform may depend on the namespace (autocall)."""
        self._transformed = None

    def transform_cell(self, raw_cell: str) -> str:
        # The two calls of one execute get the same text: the second reuses the first.
        if self._transformed is not None and self._transformed[0] == raw_cell:
            return self._transformed[1]
        cell = super().transform_cell(raw_cell)
        self._transformed = (raw_cell, cell)
        return cell

    def should_run_async(
        self,
        raw_cell: str,
        *,
        transformed_cell: str | None = None,
        preprocessing_exc_tuple: Any = None,
    ) -> bool:
        # No need to compile the cell to look for what it cannot contain.
        if not may_run_async(raw_cell if transformed_cell is None else transformed_cell):
            return False
        return super().should_run_async(
            raw_cell,
            transformed_cell=transformed_cell,
            preprocessing_exc_tuple=preprocessing_exc_tuple,
        )
