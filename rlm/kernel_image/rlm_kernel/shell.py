"""RLMShell: IPython's shell with the per-execute work an rlm kernel does not need removed.

ipykernel transforms each cell twice (once to decide whether it needs a coroutine runner,
once more to run it), and IPython compiles each cell once only to look for a top-level
`await`; its transform also tokenizes every cell to look for IPython's own syntax. All
are a large part of a short cell's time in the kernel.
"""

from __future__ import annotations

import re
from typing import Any

from ipykernel.zmqshell import ZMQInteractiveShell
from IPython.core.inputtransformer2 import TransformerManager
from traitlets import default

# What every one of IPython's token transforms looks for is spelled with one of these:
# `x = %magic`, `x = !cmd`, `cmd?`, and a line starting with an escape (! ? % , ; /).
_IPYTHON_SYNTAX = re.compile(r"[%!?]|^[ \t\f]*[,;/]", re.MULTILINE)


def may_run_async(cell: str) -> bool:
    """False when `cell` surely has no top-level `await`, `async for` or `async with`:
    each spells one of these words, and without them there is nothing to look for."""
    return "await" in cell or "async" in cell


class RLMTransformerManager(TransformerManager):
    """Skips tokenizing (the token transforms' work) a cell that has none of IPython's
    syntax, as long as the token transforms are IPython's own."""

    def __init__(self) -> None:
        super().__init__()
        self._stock = list(self.token_transformers)

    def do_token_transforms(self, lines: list[str]) -> list[str]:
        if self.token_transformers == self._stock and not _IPYTHON_SYNTAX.search("".join(lines)):
            return lines
        return super().do_token_transforms(lines)


class RLMShell(ZMQInteractiveShell):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transformed: tuple[str, str] | None = None

    @default("input_transformer_manager")
    def _lean_transformer_manager(self) -> TransformerManager:
        return RLMTransformerManager()

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
