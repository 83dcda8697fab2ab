"""`python -m rlm`: the rlm command, for use without the console scripts."""

from rlm.cli import main

main()
