"""`rlm image build`: the kernel image, built by the engine's own CLI with its output
streamed. `build_command` is the one place the build command line is written.

The build context is staged in a temporary directory holding only the Containerfile and
the in-kernel runtime, so the engine is not sent the whole checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import deque
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from rlm.cli.errors import ExitCode, UsageProblem

DEFAULT_BASE_IMAGE = "python:3.12-slim"
# What `make setup` / `make base-image` build without a registry; preferred when present, so
# an offline host never tries to pull.
LOCAL_BASE_IMAGE = "localhost/rlm-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The directory holding the `rlm` package: a checkout, or site-packages for an installed
# wheel, which carries the Containerfile as package data.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = Path("rlm/kernel_image/Containerfile")
RUNTIME_SOURCES = Path("rlm/kernel_image/rlm_kernel")
ENGINES = ("podman", "docker")


def build_command(
    engine: str,
    *,
    tag: str,
    base_image: str,
    runtime_hash: str,
    context_dir: Path,
    ca_bundle: Path | None = None,
    extra_packages: str = "",
) -> list[str]:
    """The engine command building the kernel image from a staged `context_dir`.

    `ca_bundle` (Podman only) is the host's CA bundle, mounted into the build steps for
    pip behind a TLS-inspecting proxy; it is never copied into the image.
    `extra_packages` are pip requirement specs installed beside the default data stack.
    """
    command = [
        engine, "build", "-f", str(context_dir / "Containerfile"), "-t", tag,
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"RUNTIME_HASH={runtime_hash}",
    ]  # fmt: skip
    if extra_packages:
        command += ["--build-arg", f"EXTRA_PACKAGES={extra_packages}"]
    if ca_bundle is not None and Path(engine).name == "podman":
        certs = ca_bundle.parent
        command += ["-v", f"{certs}:{certs}:ro", "--build-arg", f"PIP_CERT={ca_bundle}"]
    return [*command, str(context_dir)]


def find_engine(engine: str | None) -> str:
    """The engine executable: `engine` if given, else podman, else docker."""
    for name in [engine] if engine else ENGINES:
        if path := shutil.which(name):
            return path
    wanted = engine or "podman or docker"
    raise UsageProblem(f"{wanted} not found: install podman (apt-get install podman runc uidmap)")


def choose_base_image(executable: str) -> str:
    """The local base if the engine has it, else the registry's Python image."""
    present = subprocess.run(
        [executable, "image", "inspect", LOCAL_BASE_IMAGE],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    return LOCAL_BASE_IMAGE if present.returncode == 0 else DEFAULT_BASE_IMAGE


def stage_context(into: Path, source_root: Path = SOURCE_ROOT) -> Path:
    """Copy the Containerfile and the runtime's sources into `into`; return it."""
    containerfile = source_root / CONTAINERFILE
    if not containerfile.is_file():
        raise UsageProblem(f"no Containerfile at {containerfile}: reinstall rlm")
    shutil.copy(containerfile, into / "Containerfile")
    runtime = into / RUNTIME_SOURCES
    runtime.mkdir(parents=True)
    for source in (source_root / RUNTIME_SOURCES).glob("*.py"):
        shutil.copy(source, runtime / source.name)
    return into


def stream_build(command: list[str], console: Console) -> tuple[int, list[str]]:
    """Run the build showing its output; return its exit status and last lines."""
    tail: deque[str] = deque(maxlen=20)
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None
    # On a terminal the build steps stay and the rest scrolls by in a status line.
    status = console.status("starting the build") if console.is_terminal else None
    if status is not None:
        status.start()
    try:
        for raw in process.stdout:
            line = raw.rstrip()
            tail.append(line)
            if status is None or line.startswith(("STEP ", "Step ", "#")):
                console.print(escape(line), highlight=False)
            elif line:
                status.update(escape(line[:100]))
        return process.wait(), list(tail)
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        raise
    finally:
        if status is not None:
            status.stop()


@click.group()
def image() -> None:
    """Build the kernel image the sandboxes run."""


@image.command()
@click.option(
    "--base-image",
    help=f"Python base image (default: {LOCAL_BASE_IMAGE} if present, as `make setup` "
    f"builds it without a registry, else {DEFAULT_BASE_IMAGE}).",
)
@click.option("--tag", help="Image name (default: $RLM_IMAGE, else localhost/rlm-kernel:VERSION).")
@click.option("--engine", help="Engine executable (default: podman, else docker).")
@click.option(
    "--extra-packages",
    default="",
    metavar="SPECS",
    help='More pip packages for the kernel, e.g. "scipy lxml>=5" (space-separated).',
)
def build(base_image: str | None, tag: str | None, engine: str | None, extra_packages: str) -> int:
    """Build the kernel image from this checkout, labelled with its runtime hash."""
    from rlm.kernel_image import runtime_hash
    from rlm.sandbox.provisioner import default_image

    executable = find_engine(engine)
    tag = tag or default_image()
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if base_image is None:
        base_image = choose_base_image(executable)
        console.print(f"rlm: base image {escape(base_image)}")
    with tempfile.TemporaryDirectory(prefix="rlm-image-") as staging:
        command = build_command(
            executable,
            tag=tag,
            base_image=base_image,
            runtime_hash=runtime_hash(),
            context_dir=stage_context(Path(staging)),
            ca_bundle=HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None,
            extra_packages=" ".join(extra_packages.split()),
        )
        console.print(f"rlm: {escape(' '.join(command))}")
        status, tail = stream_build(command, console)
    if status != 0:
        last = next((line for line in reversed(tail) if line.strip()), "")
        console.print(
            f"rlm image build: error: the build of {escape(tag)} failed "
            f"({Path(executable).name} exited with {status}): {escape(last)}"
        )
        if base_image == DEFAULT_BASE_IMAGE:
            console.print(
                "rlm: offline? build a local base (`make base-image`) and pass "
                "--base-image localhost/rlm-base:bookworm"
            )
        # The image is part of the set-up: without it nothing runs (exit 2, as any set-up
        # problem).
        return ExitCode.USAGE
    console.print(f"rlm: built {escape(tag)} (runtime {runtime_hash()})")
    click.echo(tag)
    return ExitCode.OK
