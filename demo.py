"""Demo: ask a Recursive Language Model about a report too long to read in one prompt.

    python demo.py --verbose                                # Anthropic (ANTHROPIC_API_KEY)
    python demo.py --backend ollama --model llama3.2 --verbose
    python demo.py --context-file doc.txt --query "Your question here"

The default context is sample_data/large_document.txt (rebuild it with
scripts/make_sample_data.py) and the default query needs searching and counting across
its sections; sample_data/expected_answers.json holds the answers to compare. This is
the `rlm` command with fewer options: both run rlm.cli.run.execute.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from rlm.backends import PRESETS
from rlm.cli.errors import OneLineErrors
from rlm.cli.run import RunRequest, execute

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"
SAMPLES = json.loads((SAMPLE_DATA / "expected_answers.json").read_text())["samples"]


@click.command(cls=OneLineErrors)
@click.option("--backend", type=click.Choice(list(PRESETS)), default="anthropic", show_default=True)
@click.option("--model", help="Model to use (default: the backend's).")
@click.option(
    "--context-file",
    type=click.Path(path_type=Path),
    default=SAMPLE_DATA / "large_document.txt",
    show_default=True,
)
@click.option("--query", default=SAMPLES[0]["query"], show_default=True)
@click.option("--verbose", is_flag=True, help="Show the code the model writes and its output.")
def demo(backend: str, model: str | None, context_file: Path, query: str, verbose: bool) -> int:
    """Run one RLM query and print the answer."""
    request = RunRequest(
        backend=backend,
        model=model,
        context_files=(str(context_file),),
        query=query,
        verbose=verbose,
    )
    return execute(request)


if __name__ == "__main__":
    demo()
