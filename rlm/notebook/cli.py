"""`rlm kernel install | list | remove`."""

from __future__ import annotations

import click
from jupyter_client.kernelspec import NoSuchKernel

from rlm.cli.errors import UsageProblem
from rlm.notebook import kernelspec, reach


@click.group("kernel")
def kernel() -> None:
    """Use rlm's sandboxed kernel from JupyterLab, nbclient and other Jupyter tools."""


@kernel.command("install")
@click.option("--name", default="rlm", show_default=True, help="Kernelspec name.")
@click.option("--user", is_flag=True, help="Install for this user only.")
@click.option("--sys-prefix", is_flag=True, help="Install into this Python environment.")
@click.option("--prefix", help="Install under this prefix (share/jupyter/kernels).")
@click.option("--backend", help="Preset that serves llm_query (keys from the environment).")
@click.option("--model", help="Model for llm_query (default: the preset's).")
@click.option("--base-url", help="Endpoint override for the backend.")
@click.option("--context-file", type=click.Path(dir_okay=False), help="File loaded as CONTEXT.")
@click.option("--image", help="Kernel image (default localhost/rlm-kernel:<version>).")
@click.option(
    "--runtime", type=click.Choice(["container", "local"]), default="container", show_default=True
)
def install(
    name: str,
    user: bool,
    sys_prefix: bool,
    prefix: str | None,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    context_file: str | None,
    image: str | None,
    runtime: str,
) -> None:
    """Write a kernelspec that starts rlm's kernel through its provisioner."""
    import sys

    if sum([user, sys_prefix, prefix is not None]) > 1:
        raise click.UsageError("choose at most one of --user, --sys-prefix and --prefix")
    if backend:
        from rlm.backends import PRESETS

        if backend not in PRESETS:
            raise click.BadParameter(
                f"unknown backend {backend!r}: choose from {', '.join(PRESETS)}",
                param_hint="--backend",
            )
    try:
        where = kernelspec.install(
            name,
            user=user,
            prefix=sys.prefix if sys_prefix else prefix,
            backend=backend,
            model=model,
            base_url=base_url,
            context_file=context_file,
            image=image,
            runtime=runtime,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise UsageProblem(str(exc)) from None
    click.echo(f"installed kernelspec {name!r} in {where}")
    if problem := reach.unreachable_by_jupyter(f"rlm-{runtime}"):
        click.echo(f"rlm kernel install: warning: {problem}", err=True)


@kernel.command("list")
def list_() -> None:
    """List installed rlm kernelspecs."""
    specs = kernelspec.installed()
    if not specs:
        click.echo("no rlm kernelspecs installed (rlm kernel install)")
    for name, entry in sorted(specs.items()):
        click.echo(f"{name}\t{entry['resource_dir']}")


@kernel.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove an rlm kernelspec."""
    try:
        where = kernelspec.remove(name)
    except NoSuchKernel:
        raise UsageProblem(f"no rlm kernelspec named {name!r} (see: rlm kernel list)") from None
    click.echo(f"removed {where}")
