"""`python -m rlm.eval`: the `rlm eval` command, with the rlm command's error handling."""

import sys

from rlm.cli import cli
from rlm.eval.cli import eval_command

cli.add_command(eval_command)
cli.main(["eval", *sys.argv[1:]], prog_name="rlm")
