"""What a node needs to start sandboxes, checked on the node itself before any task runs."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeProbe:
    """Can this machine start sandboxes of `runtime` ("container" with `image`, default
    $RLM_IMAGE or the packaged tag; or "local")? Called, it returns None if so, else what
    is missing as a short phrase with the fix."""

    runtime: str
    image: str | None = None

    def __call__(self) -> str | None:
        if self.runtime == "local":
            if importlib.util.find_spec("ipykernel") is None:
                return "the local runtime needs ipykernel: pip install 'rlm[local]'"
            return None
        from rlm.errors import EngineNotFoundError, ImageNotFoundError
        from rlm.sandbox.engine import get_engine
        from rlm.sandbox.provisioner import default_image

        image = self.image or default_image()
        try:
            get_engine().require_image(image)
        except EngineNotFoundError as exc:
            return f"{exc} (`rlm doctor` checks the setup)"
        except ImageNotFoundError:
            return f"kernel image {image} not found: build it with `rlm image build --tag {image}`"
        return None
