"""Checks made before a run starts, shared by `rlm` and `rlm eval`: what fails here is a
usage problem (exit 2), found before anything is spent."""

from __future__ import annotations

from rlm.backends.watched import WatchedBackend
from rlm.cli.errors import UsageProblem


def backend_for(preset: str, model: str | None, base_url: str | None) -> tuple[WatchedBackend, str]:
    """The preset's backend (watched for a first-call failure) and the model to use."""
    from rlm.backends import make_backend
    from rlm.errors import BackendError

    try:
        backend, model = make_backend(preset, model=model, base_url=base_url)
    except (ValueError, BackendError) as exc:
        # A missing key, a model the preset cannot default, a missing `claude` tool.
        raise UsageProblem(str(exc)) from None
    return WatchedBackend(backend), model


def check_runtime(runtime: str, image: str | None) -> None:
    """Fail now, not from inside the run, when no sandbox can start (the same check runs
    on every node of a Ray cluster: rlm.batch.RuntimeProbe)."""
    from rlm.batch.probe import RuntimeProbe

    if (problem := RuntimeProbe(runtime, image)()) is not None:
        raise UsageProblem(problem)
