"""`python -m rlm.eval`: the `rlm eval` command, with the rlm command's error handling."""

import sys

from rlm.cli import RLMGroup
from rlm.eval.cli import eval_command

RLMGroup("rlm", commands=[eval_command]).main(["eval", *sys.argv[1:]], prog_name="rlm")
