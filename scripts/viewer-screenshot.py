"""Record a sample run, render it with `rlm view`, and screenshot the page (docs/viewer.png).

    python scripts/viewer-screenshot.py [--out docs/viewer.png] [--keep-trace run.jsonl]

The run is real (local kernel, recursion, concurrent child runs) but its model is
scripted, so no key or network is needed. Needs ipykernel, selenium, and Debian's
chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator.prompts import CHILD_QUERY
from rlm.viewer import read_trace, render_html

CONTEXT = "\n".join(
    f"2024-{month:02d} region={region} severity={1 + (month * len(region)) % 3} outage"
    for month in range(1, 13)
    for region in ("north", "south", "east")
)

ROOT_REPLIES = [
    "Let me look at the shape of the log first.\n```repl\n"
    "lines = CONTEXT.splitlines()\nprint(len(lines), 'lines')\nprint(lines[:3])\n```",
    "I will give each region to a sub-model and count severity-1 outages.\n```repl\n"
    "regions = ['north', 'south', 'east']\n"
    "chunks = ['\\n'.join(l for l in lines if f'region={r}' in l) for r in regions]\n"
    "counts = llm_query_batched([f'Count severity=1 lines:\\n{c}' for c in chunks])\n"
    "print(dict(zip(regions, counts)))\n```",
    "```repl\nbest = max(zip(counts, regions))\n"
    "FINAL(f'{sum(map(int, counts))} severity-1 outages; most in {best[1]}')\n```",
]


async def model(messages: list[Message], name: str) -> str:
    # Model latency, so the timeline shows where time goes.
    await asyncio.sleep(0.4 if name == "big-model" else 0.25)
    if CHILD_QUERY in messages[0]["content"]:
        if len(messages) == 1:
            return "```repl\nn = CONTEXT.count('severity=1')\nprint(n)\n```"
        return "```repl\nFINAL(str(n))\n```"
    return ROOT_REPLIES[len(messages) // 2]


def record(trace: Path) -> None:
    rlm = RLM(
        ScriptedBackend(model, cost_per_call=0.002),
        model="big-model",
        recursive_model="small-model",
        runtime="local",
        max_depth=2,
        trace=trace,
    )
    result = rlm.completion(CONTEXT, "How many severity-1 outages, and which region had most?")
    if not result.success:
        sys.exit(f"the sample run failed: {result.error}")


def screenshot(page: Path, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1500")
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".node"))
        driver.execute_script("document.getElementById('timeline').open = true")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tl-row"))
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/viewer.png"))
    parser.add_argument("--keep-trace", type=Path, help="Also keep the sample trace here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = args.keep_trace or Path(tmp) / "sample.jsonl"
        trace.unlink(missing_ok=True)
        record(trace)
        page = Path(tmp) / "sample.html"
        page.write_text(render_html(read_trace(trace).to_json()), encoding="utf-8")
        screenshot(page, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
