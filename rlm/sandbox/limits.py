"""Resource limits and defaults of a sandbox, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from rlm.kernel_image.rlm_kernel.protocol import DEFAULT_OUTPUT_LIMIT

MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed kernel may use.

    memory_bytes=None sizes memory to the context: at least 2 GiB, and room for three
    copies of the context (the string itself plus what slicing and searching create).

    callback_timeout=None waits for an llm_query answer as long as an execute may run; it
    may not be longer, since an execute that ends cancels the llm_query calls it made.
    """

    memory_bytes: int | None = None
    pids: int = 256
    cpus: float = 1.0
    tmpfs_bytes: int = 256 * MiB
    output_chars: int = DEFAULT_OUTPUT_LIMIT
    execute_timeout: float = 300.0
    callback_timeout: float | None = None
    callback_max_bytes: int = 32 * MiB
    callback_max_batch: int = 4096
    callback_in_flight: int = 64
    start_timeout: float = 60.0
    interrupt_grace: float = 5.0

    def __post_init__(self) -> None:
        if self.callback_timeout is None:
            object.__setattr__(self, "callback_timeout", self.execute_timeout)
        elif self.callback_timeout > self.execute_timeout:
            raise ValueError(
                f"callback_timeout ({self.callback_timeout:g} s) may not exceed "
                f"execute_timeout ({self.execute_timeout:g} s)"
            )

    def memory_for(self, context_bytes: int) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        return max(2 * GiB, 3 * context_bytes + 512 * MiB)
