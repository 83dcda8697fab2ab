"""The `rlm` command (also installed as `rlm-run`).

    rlm --backend openai --context-file doc.txt --query "Summarize"
    rlm doctor --backend openai
    rlm image build --base-image localhost/rlm-base:bookworm

Without a subcommand, `rlm` runs a query: the run options belong to the group itself.
Subcommands are imported on first use from SUBCOMMANDS, so another package adds one
(any click command or group) with a single line there, and a plain query never pays for
importing them. Exit codes are listed in rlm.cli.errors.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

from rlm.cli.config import CONFIG_KEY, ENV_PREFIX, Config
from rlm.cli.errors import ExitCode, OneLineErrors
from rlm.cli.run import RunRequest, execute, run_options


@dataclass(frozen=True)
class Subcommand:
    target: str
    """"module:attribute" of a click command or group."""
    summary: str
    """Its short help, so `rlm --help` lists it without importing it (a test keeps the two
    equal)."""


SUBCOMMANDS = {
    "doctor": Subcommand(
        "rlm.cli.doctor:doctor",
        "Check the container engine, rootless setup, kernel image and model keys.",
    ),
    "eval": Subcommand(
        "rlm.cli.eval:eval_command",
        "Evaluate on long-context benchmarks (S-NIAH, OOLONG, OOLONG-Pairs) generated offline "
        "from --seed, printing a summary table and plotting score and cost against context "
        "length.",
    ),
    "image": Subcommand("rlm.cli.image:image", "Build the kernel image the sandboxes run."),
    "kernel": Subcommand(
        "rlm.notebook.cli:kernel",
        "Use rlm's sandboxed kernel from JupyterLab, nbclient and other Jupyter tools.",
    ),
    "view": Subcommand(
        "rlm.cli.view:view",
        "Show a run's JSONL trace (rlm --trace FILE) as a self-contained web page.",
    ),
}


class RLMGroup(OneLineErrors, click.Group):
    """A group that loads SUBCOMMANDS lazily; errors are reported as one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS and cmd_name not in self.commands:
            module, _, attribute = SUBCOMMANDS[cmd_name].target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click would import every subcommand (the sandbox, Jupyter, the SDKs) for its help.
        names = self.list_commands(ctx)
        # As click lays it out: the help shortened to what fits beside the longest name.
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, click.Command(name, help=SUBCOMMANDS[name].summary).get_short_help_str(limit))
            if name in SUBCOMMANDS and name not in self.commands
            else (name, self.commands[name].get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> Config:
    """Eager, so the file's values are the defaults of every option parsed after it."""
    config = Config.load(value)
    ctx.default_map = config.default_map()
    ctx.meta[CONFIG_KEY] = config
    return config


@click.group(
    "rlm",
    cls=RLMGroup,
    invoke_without_command=True,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        # Every option also reads RLM_<OPTION> (a subcommand's: RLM_<COMMAND>_<OPTION>).
        "auto_envvar_prefix": ENV_PREFIX,
    },
)
@click.version_option(package_name="rlm", prog_name="rlm")
@click.option(
    "--config",
    metavar="PATH",
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help="Config file of option defaults (default: ~/.config/rlm/config.toml; "
    "precedence: flags > RLM_* variables > file > defaults).",
)
@run_options
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> int | None:
    """Answer a query about a large context with a Recursive Language Model.

    The model never reads the context: it writes Python that inspects CONTEXT in a
    sandboxed kernel and calls llm_query() on the parts it needs. The answer goes to
    stdout, progress to stderr. Exit status: 0 answered, 1 no answer (or a budget
    reached), 2 bad usage or setup, 130/143 interrupted.

    \b
    rlm --backend openai --context-file report.txt --query "Which region grew most?"
    cat notes/*.md | rlm --context-file - --query "List the open decisions"
    """
    # Only flags typed now start a run or clash with a subcommand: a default from the
    # environment or the config file does neither.
    given = [
        param.opts[0]
        for param in ctx.command.params
        if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE
        and param.name != "config"
    ]
    if ctx.invoked_subcommand is not None:
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: run options go without a subcommand", ctx=ctx
            )
        return None
    if not given:
        click.echo(ctx.get_help())
        return ExitCode.OK
    return execute(RunRequest(**options))


def main() -> None:
    """Entry point of the `rlm` and `rlm-run` console scripts."""
    # One name in every message, however the command was started (rlm-run, python -m rlm).
    cli.main(prog_name="rlm")
