"""The in-container kernel runtime.

`rlm_kernel/` is copied into the kernel image (and put on PYTHONPATH for the local runtime).
It imports nothing from the host package: only the standard library, ipykernel, pyzmq and
jupyter_client, which the image installs. The host imports one module of it,
`rlm_kernel.protocol` (standard library only): the contract both sides follow.
"""

from pathlib import Path

RUNTIME_DIR = Path(__file__).parent
"""Directory to put on PYTHONPATH so that `python -m rlm_kernel` starts our kernel."""


def runtime_hash() -> str:
    """Fingerprint of the runtime's sources, stamped on the image to detect a stale build."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((RUNTIME_DIR / "rlm_kernel").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
