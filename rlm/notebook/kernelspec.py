"""Installing, listing and removing kernelspecs that start rlm's sandboxed kernel."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from rlm.sandbox.kernelspec import make_kernel_spec

HANDLER = "rlm.notebook.handler:backend_handler"


def install(
    name: str = "rlm",
    *,
    user: bool = False,
    prefix: str | None = None,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    context_file: str | None = None,
    image: str | None = None,
    runtime: str = "container",
    handler: str | None = None,
) -> str:
    """Write the kernelspec and return the directory it went to."""
    config: dict[str, Any] = {}
    if context_file:
        path = Path(context_file).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"context file {context_file} does not exist")
        config["context_file"] = str(path)
        config["context_format"] = "json" if path.suffix == ".json" else "text"
    if image and runtime == "container":
        config["image"] = image
    if backend or handler:
        config["callback_handler"] = handler or HANDLER
        config["handler_config"] = {
            key: value
            for key, value in {"backend": backend, "model": model, "base_url": base_url}.items()
            if value
        }
    spec = make_kernel_spec(runtime, config)
    spec.display_name = f"{spec.display_name} [{name}]"
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "kernel.json").write_text(json.dumps(spec.to_dict(), indent=1))
        return KernelSpecManager().install_kernel_spec(
            source, kernel_name=name, user=user, prefix=prefix
        )


def installed() -> dict[str, dict[str, Any]]:
    """Installed kernelspecs that use one of rlm's provisioners, by name."""
    found = {}
    for name, entry in KernelSpecManager().get_all_specs().items():
        provisioner = entry["spec"].get("metadata", {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name", "").startswith("rlm-"):
            found[name] = entry
    return found


def remove(name: str) -> str:
    """Remove an rlm kernelspec; return where it was."""
    if name not in installed():
        raise NoSuchKernel(name)
    return KernelSpecManager().remove_kernel_spec(name)
