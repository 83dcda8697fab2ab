"""Defaults for every option of the rlm command, from a config file and the environment.

Precedence, highest first: flags on the command line; environment variables (every option
has one: `RLM_<OPTION>` for the run, `RLM_<COMMAND>_<OPTION>` for a subcommand's, e.g.
RLM_MAX_DEPTH, RLM_EVAL_CONCURRENCY; click's `auto_envvar_prefix`); the config file; the
built-in defaults. The file is `--config PATH`, else $RLM_CONFIG, else
`~/.config/rlm/config.toml` (under $XDG_CONFIG_HOME if set):

    backend = "openai"            # the run's options, as on the command line
    model = "gpt-4o"
    max-depth = 2

    [eval]                        # a subcommand's own table
    concurrency = 8

The SHARED keys (and their RLM_<OPTION> variables) also apply to the subcommands that take
the same option, so one `backend = ...` sets it for `rlm`, `rlm eval`, `rlm doctor` and
`rlm kernel install`; a subcommand's own table or variable wins over them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm.cli.errors import UsageProblem

ENV_PREFIX = "RLM"
CONFIG_KEY = "rlm.config"
"""Where the loaded Config is kept in the root context's `meta` (doctor shows it)."""
SHARED = ("backend", "model", "base_url", "image", "runtime")
SUBCOMMANDS_SHARING = (("eval",), ("doctor",), ("kernel", "install"))
"""Where SHARED keys apply, as paths of subcommand names."""


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rlm" / "config.toml"


@dataclass(frozen=True)
class Config:
    """The config file's values, keyed as click names parameters (dashes as underscores)."""

    path: Path
    found: bool
    values: Mapping[str, Any]

    @classmethod
    def load(cls, given: str | None) -> Config:
        """The file `--config` names (it must exist), else the default one (if any)."""
        path = Path(given).expanduser() if given else default_path()
        try:
            with path.open("rb") as file:
                values = tomllib.load(file)
        except FileNotFoundError:
            if given:
                raise UsageProblem(f"config file {path} does not exist") from None
            return cls(path, False, {})
        except OSError as exc:
            raise UsageProblem(f"cannot read config file {path}: {exc.strerror}") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageProblem(f"config file {path} is not valid TOML: {exc}") from None
        return cls(path, True, _underscored(values))

    def default_map(self) -> dict[str, Any]:
        """click's default_map for the rlm group: the file's values, with the SHARED ones
        (from the file, then overridden by RLM_<OPTION>) copied into the subcommands."""
        tree = dict(self.values)
        from_file = {key: self.values[key] for key in SHARED if key in self.values}
        from_env = {key: value for key in SHARED if (value := os.environ.get(env_name(key)))}
        for *parents, name in SUBCOMMANDS_SHARING:
            node = tree
            for parent in parents:
                node[parent] = node = dict(node.get(parent) or {})
            node[name] = {**from_file, **(node.get(name) or {}), **from_env}
        return tree


def env_name(key: str) -> str:
    """The run option's environment variable, as click's auto_envvar_prefix names it."""
    return f"{ENV_PREFIX}_{key.upper()}"


def _underscored(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key.replace("-", "_"): _underscored(value) if isinstance(value, dict) else value
        for key, value in values.items()
    }
