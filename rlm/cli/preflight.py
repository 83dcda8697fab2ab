"""Checks made before a run starts, shared by `rlm` and `rlm eval`: what fails here is a
usage problem (exit 2), found before anything is spent."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from rlm.backends.watched import WatchedBackend
from rlm.cli.errors import UsageProblem


def backend_for(preset: str, model: str | None, base_url: str | None) -> tuple[WatchedBackend, str]:
    """The preset's backend (watched for a first-call failure) and the model to use."""
    from rlm.backends import make_backend
    from rlm.errors import BackendError

    if base_url is not None:
        check_url(base_url)

    try:
        backend, model = make_backend(preset, model=model, base_url=base_url)
    except (ValueError, BackendError) as exc:
        # A missing key, a model the preset cannot default, a missing `claude` tool.
        raise UsageProblem(str(exc)) from None
    return WatchedBackend(backend), model


def check_writable(path: Path, option: str) -> None:
    """A file the run appends to (its directory made if missing, as the run does) must be
    writable before anything is spent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageProblem(f"cannot write {option} {path}: {exc.strerror or exc}") from None


def check_url(base_url: str) -> None:
    """An endpoint URL must say how and where: a typo would otherwise surface as a
    connection error naming a URL the user never meant."""
    import httpx

    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise UsageProblem(
            f"--base-url {base_url!r} is not an http(s) URL: give one such as "
            "http://localhost:8000/v1"
        )


def check_recursion(
    max_depth: int | None, sub_model: tuple[str, str | None], warm_pool: int | None = None
) -> None:
    """Options that depend on sub-calls being served need a depth that has them.

    `sub_model` is the option's name and value (--recursive-model, or --sub-model for eval).
    """
    option, model = sub_model
    if max_depth == 0 and model:
        raise UsageProblem(f"{option} has no use with --max-depth 0 (llm_query is disabled)")
    if warm_pool and max_depth is not None and max_depth < 2:
        raise UsageProblem(
            f"--warm-pool starts sandboxes for child runs, which need --max-depth 2 or more "
            f"(--max-depth {max_depth} has none)"
        )


def check_runtime(runtime: str, image: str | None) -> None:
    """Fail now, not from inside the run, when no sandbox can start (the same check runs
    on every node of a Ray cluster: rlm.batch.RuntimeProbe)."""
    from rlm.batch.probe import RuntimeProbe

    if runtime == "local" and image and _typed("image"):
        raise UsageProblem("--image has no use with --runtime local (it runs no container)")
    if (problem := RuntimeProbe(runtime, image)()) is not None:
        raise UsageProblem(problem)


def _typed(name: str) -> bool:
    """Whether the running command's option `name` was given as a flag, not taken from
    RLM_* variables or the config file (RLM_IMAGE is often exported for every run)."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
