"""An RLM described by value, so it can be built where a task runs (a Ray worker).

An RLM holds a live client with its key; a recipe holds only the backend preset's name,
the model and the RLM's options. The worker builds the backend from its own environment,
which the driver fills with `forwarded_env()`: the key and endpoint travel as environment
variables of the task's runtime environment, never inside the pickled task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlm.backends import PRESETS, Backend, make_backend

if TYPE_CHECKING:
    from rlm.orchestrator import RLM


@dataclass(frozen=True)
class RLMRecipe:
    """`RLM(make_backend(backend, model=model, base_url=base_url)[0], **options)`, built on
    demand.

    `options` are RLM keyword arguments that pickle (runtime, image, max_iterations,
    max_cost_usd, ...): no backend, sandbox factory, sinks or trace file."""

    backend: str
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    """The endpoint (not a secret); None: RLM_<PRESET>_BASE_URL where it runs, else the
    preset's."""

    def __post_init__(self) -> None:
        if self.backend not in PRESETS:
            raise ValueError(
                f"unknown backend preset {self.backend!r}; choose one of: {', '.join(PRESETS)}"
            )

    def forwarded_env(self) -> dict[str, str]:
        """The driver's values of the variables the preset reads (key, endpoint URL)."""
        preset = PRESETS[self.backend]
        names = [name for name in (preset.key_env, preset.base_url_env) if name]
        return {name: os.environ[name] for name in names if os.environ.get(name)}

    def build_backend(self) -> tuple[Backend, str]:
        """The backend and model, configured from this process's environment."""
        return make_backend(self.backend, model=self.model, base_url=self.base_url)

    def build(self, backend: Backend | None = None, model: str | None = None) -> RLM:
        """The RLM, over `backend` and `model` if given (from build_backend, wrapped), else
        over a backend configured from this process's environment."""
        from rlm.orchestrator import RLM

        if backend is None:
            backend, model = self.build_backend()
        return RLM(backend, model=model or self.model, **self.options)
