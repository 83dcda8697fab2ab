"""`rlm doctor`: is this host ready to run queries? Each check says what it found and,
for a problem, the command that fixes it. Exit 0 when nothing failed, else 1 (warnings
do not fail: rlm works, only slower or with weaker limits).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import httpx
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape

from rlm.backends import PRESETS, Preset
from rlm.cli.config import CONFIG_KEY, Config, env_name
from rlm.cli.errors import ExitCode
from rlm.cli.run import RunRequest
from rlm.errors import EngineNotFoundError, ImageNotFoundError
from rlm.kernel_image import runtime_hash
from rlm.sandbox.engine import Engine, get_engine
from rlm.sandbox.provisioner import default_image

Status = Literal["ok", "warn", "fail", "skip"]
MARKS = {"ok": "[green]✔[/]", "warn": "[yellow]![/]", "fail": "[red]✘[/]", "skip": "[dim]-[/]"}
SDK_DEFAULT_URLS = {
    "anthropic": ("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    "openai": ("OPENAI_BASE_URL", "https://api.openai.com/v1"),
}
REACH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


def engine_checks() -> tuple[list[Check], Engine | None]:
    try:
        engine = get_engine()
    except EngineNotFoundError as exc:
        return [
            Check(
                "engine",
                "fail",
                str(exc),
                "apt-get install podman runc uidmap (or install Docker, or set DOCKER_HOST)",
            )
        ], None
    kind = "podman" if engine.is_podman else "docker"
    mode = "rootless" if engine.rootless else "rootful"
    checks = [Check("engine", "ok", f"{kind}, {mode}")]
    if engine.service is None:
        checks.append(Check("socket", "ok", engine.url))
    else:
        checks.append(
            Check(
                "socket",
                "warn",
                "no engine socket answers: each rlm process starts its own "
                "`podman system service` (slower start)",
                socket_fix(),
            )
        )
    return checks, engine


def socket_fix() -> str:
    """How to keep a Podman socket running: systemd's socket unit where systemd runs,
    else a service started by hand on the socket rlm looks for first."""
    user = "" if os.getuid() == 0 else " --user"
    if Path("/run/systemd/system").is_dir():  # what sd_booted() checks
        return f"systemctl{user} enable --now podman.socket"
    runtime_dir = "/run" if os.getuid() == 0 else "$XDG_RUNTIME_DIR"
    return (
        f"no systemd here: start one yourself (and at boot): podman system service --time=0 "
        f"unix://{runtime_dir}/podman/podman.sock &"
    )


def rootless_checks(engine: Engine | None, uid: int | None = None) -> list[Check]:
    uid = os.getuid() if uid is None else uid
    if uid == 0:
        return [Check("rootless", "skip", "running as root: rootless setup not needed")]
    user = pwd.getpwuid(uid).pw_name
    checks = [subid_check(user, uid, Path(f"/etc/sub{kind}"), kind) for kind in ("uid", "gid")]
    missing = [tool for tool in ("newuidmap", "newgidmap") if shutil.which(tool) is None]
    checks.append(
        Check("uid mapping", "fail", f"{' and '.join(missing)} not found", "apt-get install uidmap")
        if missing
        else Check("uid mapping", "ok", "newuidmap and newgidmap installed")
    )
    if engine is not None:
        checks.append(storage_check(str(engine.client.info().get("Driver", "unknown"))))
        checks.append(
            Check("limits", "ok", "memory and pids cgroup limits enforced")
            if engine.enforces_cgroup_limits
            else Check(
                "limits",
                "warn",
                "no delegated cgroups v2 controllers: kernels are limited with rlimits",
                "enable cgroups v2 delegation (systemd: Delegate=memory pids for user@.service)",
            )
        )
    return checks


def subid_check(user: str, uid: int, path: Path, kind: str) -> Check:
    """Whether `path` (/etc/subuid or /etc/subgid) gives the user a range of ids."""
    name = f"sub{kind}"
    try:
        owners = {line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line}
    except OSError:
        owners = set()
    if user in owners or str(uid) in owners:
        return Check(name, "ok", f"{path} has an entry for {user}")
    return Check(
        name,
        "fail",
        f"{path} has no entry for {user}: rootless containers cannot map users",
        f"usermod --add-sub{kind}s 100000-165535 {user}   (as root)",
    )


def userns_checks(etc: Path = Path("/etc")) -> list[Check]:
    """Rootful Podman takes each kernel's user namespace (--userns=auto) from the ids of
    user `containers`."""
    checks = []
    for kind in ("uid", "gid"):
        path = etc / f"sub{kind}"
        check = subid_check("containers", -1, path, kind)
        if check.status == "fail":
            check = Check(
                f"sub{kind} (user namespaces)",
                "fail",
                f"{path} has no entry for containers: kernels cannot get a user namespace of "
                "their own",
                f"echo containers:1000000000:1000000000 >> {path}   (make setup does)",
            )
        checks.append(check)
    return checks


def storage_check(driver: str) -> Check:
    if driver == "overlay":
        return Check("storage", "ok", "overlay storage driver")
    return Check(
        "storage",
        "warn",
        f"storage driver is {driver}: container starts are slow and use much disk",
        'apt-get install fuse-overlayfs, set driver = "overlay" in '
        "~/.config/containers/storage.conf, then `podman system reset`",
    )


def image_check(engine: Engine | None, image: str, current: str) -> Check:
    rebuild = f"rlm image build --tag {image}"
    if engine is None:
        return Check("image", "skip", f"{image}: no engine to look in")
    try:
        labels = engine.require_image(image)
    except ImageNotFoundError:
        return Check("image", "fail", f"{image} is not built", rebuild)
    built_from = labels.get("rlm.runtime-hash")
    if built_from == current:
        return Check("image", "ok", f"{image}, built from the current runtime ({current})")
    if built_from in (None, "unknown"):
        return Check("image", "warn", f"{image} carries no runtime hash label", rebuild)
    return Check(
        "image",
        "fail",
        f"{image} was built from another runtime ({built_from}, current {current})",
        rebuild,
    )


def backend_checks(preset: Preset, base_url: str | None) -> list[Check]:
    if preset.kind == "claude-cli":
        if shutil.which("claude"):
            return [Check("backend", "ok", "the claude CLI is installed (it logs in itself)")]
        return [
            Check(
                "backend",
                "fail",
                "the claude CLI is not on PATH",
                "npm install -g @anthropic-ai/claude-code, then run `claude` once to log in",
            )
        ]
    checks = []
    if preset.key_env is None:
        checks.append(Check("key", "ok", f"{preset.provider} needs no key"))
    elif os.environ.get(preset.key_env):
        checks.append(Check("key", "ok", f"{preset.key_env} is set"))
    elif not preset.needs_key:
        checks.append(
            Check(
                "key",
                "ok",
                f"{preset.key_env} is not set (only a server started with one needs it)",
            )
        )
    else:
        checks.append(
            Check(
                "key",
                "fail",
                f"{preset.key_env} is not set",
                f"export {preset.key_env}=<your {preset.provider} key>",
            )
        )
    checks.append(endpoint_check(preset, endpoint_url(preset, base_url)))
    return checks


def endpoint_url(preset: Preset, base_url: str | None) -> str:
    """The URL a run would use, resolved as rlm.backends.make_backend and the SDKs do."""
    env_url = os.environ.get(preset.base_url_env) if preset.base_url_env else None
    if url := base_url or env_url or preset.base_url:
        return url
    sdk_env, sdk_default = SDK_DEFAULT_URLS[preset.kind]
    return os.environ.get(sdk_env) or sdk_default


def endpoint_check(preset: Preset, url: str) -> Check:
    # Any HTTP answer (even 401 or 404) shows the endpoint is there; no tokens are spent.
    try:
        httpx.get(url, timeout=REACH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        hint = "start the server, " if not preset.needs_key else ""
        return Check(
            "endpoint",
            "fail",
            f"cannot reach {url}: {exc or type(exc).__name__}",
            f"{hint}check the network, or point --base-url / {preset.base_url_env} at it",
        )
    return Check("endpoint", "ok", f"{url} answers")


ENV = ParameterSource.ENVIRONMENT


def config_check(root: click.Context) -> Check:
    """Where the options' defaults come from, given the root (rlm group) context."""
    config: Config | None = root.meta.get(CONFIG_KEY)
    if config is None:  # the command was run on its own, not under the rlm group
        return Check("config", "skip", "no config loaded")
    found = "" if config.found else " (none there)"
    settings = [
        f"{name}={root.params[name]!r} ({env_name(name) if source is ENV else 'file'})"
        for param in root.command.params
        if (name := param.name) in root.params
        and (source := root.get_parameter_source(name)) in (ENV, ParameterSource.DEFAULT_MAP)
    ]
    return Check(
        "config",
        "ok",
        f"file {config.path}{found}; set: {', '.join(settings) or 'nothing'}; "
        "precedence: flags > RLM_* variables > file > defaults",
    )


def all_checks(backend: str, base_url: str | None, image: str) -> Iterator[Check]:
    checks, engine = engine_checks()
    yield from checks
    yield from rootless_checks(engine)
    if engine is not None and engine.is_podman and os.getuid() == 0:
        yield from userns_checks()
    yield image_check(engine, image, runtime_hash())
    yield from backend_checks(PRESETS[backend], base_url)


@click.command()
@click.option(
    "--backend",
    type=click.Choice(list(PRESETS)),
    default=RunRequest.backend,
    show_default=True,
    help="The preset whose key and endpoint to check.",
)
@click.option("--base-url", help="Endpoint to check instead of the preset's.")
@click.option("--image", help="Kernel image (default: $RLM_IMAGE, else rlm-kernel:VERSION).")
def doctor(backend: str, base_url: str | None, image: str | None) -> int:
    """Check the container engine, rootless setup, kernel image and model keys."""
    console = Console(highlight=False, soft_wrap=True)
    failed = False
    root = click.get_current_context().find_root()
    checks = all_checks(backend, base_url, image or default_image())
    for check in itertools.chain([config_check(root)], checks):
        failed |= check.status == "fail"
        console.print(f"{MARKS[check.status]} {check.name:<12} {escape(check.detail)}")
        if check.fix:
            console.print(f"  [dim]fix:[/] {escape(check.fix)}")
    return ExitCode.FAILED if failed else ExitCode.OK
