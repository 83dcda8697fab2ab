"""Helpers for tests that watch processes: the reaper a process started, waiting for a
condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def reaper_of(pid: int) -> int:
    """The pid of the reaper process `pid` started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and cmdline.rstrip(b"\0").endswith(b"reaper.py"):
            return int(stat.parent.name)
    raise AssertionError(f"process {pid} has no reaper")


def until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
