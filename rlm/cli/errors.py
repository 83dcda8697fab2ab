"""Exit codes of the rlm command, and how its errors are reported: one clear line.

0   the run answered (or a subcommand succeeded)
1   the run failed: no answer, a budget reached, the model failing mid-run; doctor
    found problems
2   the command cannot run as given, found before any model answered: bad options,
    an unreadable or binary context, a missing key, no engine or image, an endpoint
    that cannot be reached or rejects the key on the first call; a subcommand's usage
    or set-up error (a failed image build, an unknown kernelspec)
130 / 143   stopped by SIGINT / SIGTERM (128 + the signal number, as shells report)
"""

from __future__ import annotations

import os
import signal
import sys
from enum import IntEnum
from typing import Any

import click


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2


def signal_exit_code(signum: int) -> int:
    return 128 + signum


class UsageProblem(click.ClickException):
    """The command cannot run as given (exit 2). The message is the whole report: one
    line saying what is wrong and, where there is one, the fix."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # Raised inside a command: its path ("rlm eval") prefixes the report.
        ctx = click.get_current_context(silent=True)
        self.command_path = ctx.command_path if ctx else "rlm"


class OneLineErrors(click.Command):
    """Mixed into a command class: every error ends the command with one line on
    stderr and its exit code, never a usage dump or a traceback."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "rlm"
            click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
            code = ExitCode.USAGE
        except click.ClickException as exc:
            where = getattr(exc, "command_path", "rlm")
            click.echo(f"{where}: error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except click.Abort:
            # Ctrl-C outside a run (a run handles its own signals); nothing to clean up.
            code = signal_exit_code(signal.SIGINT)
        except Exception as exc:
            if os.environ.get("RLM_DEBUG"):
                raise
            click.echo(
                f"rlm: internal error: {type(exc).__name__}: {exc} "
                "(set RLM_DEBUG=1 to see the traceback)",
                err=True,
            )
            code = ExitCode.FAILED
        if standalone_mode:
            sys.exit(int(code or 0))
        return code
