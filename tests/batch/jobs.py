"""Jobs the Ray tests ship to workers (importable there: tests is on PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WhereAndWhen:
    """Sleep a little; report the node, the process's environment variable `env_name`,
    and when it ran, to check placement and per-node limits."""

    seconds: float = 0.3
    env_name: str = "RLM_TEST_SECRET"

    async def __call__(self, item: int) -> tuple[int, str, str | None, float, float]:
        import ray

        started = time.time()
        await asyncio.sleep(self.seconds)
        node = ray.util.get_node_ip_address()
        return item, node, os.environ.get(self.env_name), started, time.time()


@dataclass(frozen=True)
class Explode:
    async def __call__(self, item: int) -> None:
        raise LookupError(f"no answer for {item}")


@dataclass(frozen=True)
class WaitForCancel:
    """Mark `folder`/started-ITEM, then wait long; on cancellation mark cleaned-ITEM, as a
    job releasing its sandbox would."""

    folder: str

    async def __call__(self, item: int) -> None:
        from pathlib import Path

        Path(self.folder, f"started-{item}").touch()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            Path(self.folder, f"cleaned-{item}").touch()
            raise
