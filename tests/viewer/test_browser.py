"""The page in a real browser (headless Chromium): tree, code, links, search, escaping,
permalinks, keys, damage, and the live view following a trace as it grows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm.viewer import read_trace, render_html
from rlm.viewer.serve import LiveTrace, TraceServer
from tests.viewer.conftest import Recorded, css, wait
from tests.viewer.helpers import HOSTILE, event, start


@pytest.fixture
def page(browser: Any, recorded: Recorded, tmp_path: Path) -> Iterator[Any]:
    """The recorded run's page, opened."""
    html = tmp_path / "run.html"
    html.write_text(render_html(read_trace(recorded.trace).to_json()))
    browser.get(html.as_uri())
    wait(browser, lambda d: css(d, "#tree .node"))
    yield browser
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def ids(recorded: Recorded) -> tuple[str, str]:
    page = read_trace(recorded.trace)
    root = page.roots[0]
    return root, page.runs[root].children[0]


def test_the_tree_holds_the_root_and_its_child_run(page: Any, recorded: Recorded) -> None:
    root, child = ids(recorded)
    nodes = css(page, "#tree .node")
    assert [n.get_attribute("data-run") for n in nodes] == [root, child]
    nested = css(page, f'#tree ul.tree .node[data-run="{child}"]')
    assert len(nested) == 1 and "sub-model · d1 · 1 it" in nested[0].text
    assert "answered" in nodes[0].text and "1 child run" in nodes[0].text
    assert "$1.2500" in css(page, "#totals summary")[0].text
    assert "2 runs, 5 model calls" in css(page, "#run-head")[0].text  # the root with its child


def test_code_blocks_are_highlighted_with_their_output(page: Any) -> None:
    first = css(page, "article.iter")[0]
    code = first.find_elements("css selector", ".cell pre.code")[0]
    assert code.text == "print(len(CONTEXT))\nundefined_name"
    assert [s.text for s in code.find_elements("css selector", "span.bi")][:2] == ["print", "len"]
    assert "NameError" in first.find_elements("css selector", "pre.err")[0].text
    assert first.find_elements("css selector", "pre.out")[0].text == "16"


def test_a_sub_call_links_to_its_child_run(page: Any, recorded: Recorded) -> None:
    root, child = ids(recorded)
    link = css(page, "a.child-link")[0]
    link.click()
    wait(page, lambda d: child[:8] in css(d, "#run-head h2")[0].text)
    assert page.current_url.endswith(f"#run-{child}")
    assert css(page, ".node.selected")[0].get_attribute("data-run") == child
    # and back to the parent from the child's header
    css(page, "#run-head a")[0].click()
    wait(page, lambda d: root[:8] in css(d, "#run-head h2")[0].text)


def test_search_finds_text_in_code_and_errors_only_finds_the_failing_step(
    page: Any, recorded: Recorded
) -> None:
    from selenium.webdriver.common.keys import Keys

    root, _ = ids(recorded)
    search = css(page, "#search")[0]
    search.send_keys("hello child")
    wait(page, lambda d: css(d, "#hit-count") and css(d, "#hit-count")[0].text == "1 match")
    css(page, "#results a.hit")[0].click()
    wait(page, lambda d: css(d, "article.iter.focus"))
    assert css(page, "article.iter.focus")[0].get_attribute("id") == f"run-{root}-i2"
    assert css(page, "article.iter.focus mark")[0].text == "hello child"

    search.clear()
    search.send_keys("no such text anywhere")
    wait(page, lambda d: css(d, "#hit-count")[0].text == "0 matches")
    search.send_keys(Keys.ESCAPE)  # clears the search
    wait(page, lambda d: css(d, "#tree"))
    css(page, "#errors-only")[0].click()
    wait(page, lambda d: css(d, "#hit-count")[0].text == "1 match")
    hit = css(page, "#results a.hit")[0]
    assert hit.get_attribute("href").endswith(f"#run-{root}-i1") and "NameError" in hit.text


def test_markup_from_the_model_shows_as_text_and_never_runs(page: Any) -> None:
    assert page.execute_script("return window.pwned") is None
    assert css(page, "img") == []
    prose = css(page, "article.iter .prose")[0].text
    assert HOSTILE in prose
    outputs = [e.text for e in css(page, "article.iter pre.out")]
    assert outputs[1].startswith(HOSTILE + "\n")


def test_permalinks_and_keys_move_between_iterations(page: Any, recorded: Recorded) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    root, child = ids(recorded)
    page.get(page.current_url.split("#")[0] + f"#run-{root}-i2")
    wait(page, lambda d: css(d, f'article.iter.focus[id="run-{root}-i2"]'))
    press = lambda *keys: ActionChains(page).send_keys(*keys).perform()  # noqa: E731
    press("j")
    wait(page, lambda d: d.current_url.endswith(f"#run-{root}-i3"))
    press("k")
    wait(page, lambda d: d.current_url.endswith(f"#run-{root}-i2"))
    press("J")
    wait(page, lambda d: d.current_url.endswith(f"#run-{child}"))
    press("t")
    wait(page, lambda d: css(d, "#timeline .tl-span.model"))
    assert len(css(page, "#timeline .tl-row")) == 2


def test_a_damaged_trace_shows_where_reading_stopped(
    browser: Any, recorded: Recorded, tmp_path: Path
) -> None:
    trace = tmp_path / "killed.jsonl"
    lines = recorded.trace.read_text().splitlines(keepends=True)
    trace.write_text("".join(lines[:4]) + lines[4][:30])
    html = tmp_path / "killed.html"
    html.write_text(render_html(read_trace(trace).to_json()))
    browser.get(html.as_uri())
    banner = wait(browser, lambda d: css(d, "#damage"))[0]
    assert "reading stopped at line 5" in banner.text and "4 events" in banner.text
    assert css(browser, "#tree .chip")[0].text == "running"


def test_the_live_view_follows_lines_appended_to_the_trace(
    browser: Any, recorded: Recorded, tmp_path: Path
) -> None:
    lines = recorded.trace.read_text().splitlines(keepends=True)
    # Up to the root's first model reply: its start and, once it has one, its sandbox.
    reply = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "model_response")
    trace = tmp_path / "live.jsonl"
    trace.write_text("".join(lines[:reply]))
    server = TraceServer(LiveTrace(trace))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(server.url)
        wait(browser, lambda d: css(d, "#tree .node"))
        assert css(browser, "article.iter") == [] and css(browser, "#live")
        with trace.open("a") as f:
            f.write(lines[reply])
        wait(browser, lambda d: len(css(d, "article.iter")) == 1)
        with trace.open("a") as f:
            f.write("".join(lines[reply + 1 :]))
        wait(browser, lambda d: len(css(d, "#tree .node")) == 2)
        wait(browser, lambda d: css(d, "#tree .chip")[0].text == "answered")
        assert len(css(browser, "article.iter")) == 3
    finally:
        server.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_only_the_selected_run_is_drawn(browser: Any, tmp_path: Path) -> None:
    lines = [start()]
    for n in range(200):
        child = f"child{n}"
        lines.append(start(child, parent_id="root"))
        for iteration in (1, 2, 3):
            lines.append(
                event("model_response", child, "root", iteration=iteration, text=f"reply {n}")
            )
    trace = tmp_path / "wide.jsonl"
    trace.write_text("".join(lines))
    html = tmp_path / "wide.html"
    html.write_text(render_html(read_trace(trace).to_json()))
    browser.get(html.as_uri() + "#run-child7")
    wait(browser, lambda d: css(d, ".node.selected"))
    assert len(css(browser, "#tree .node")) == 201
    # One run's iterations are in the page, not all 600; the timeline waits to be opened.
    assert [a.get_attribute("id") for a in css(browser, "article.iter")] == [
        "run-child7-i1",
        "run-child7-i2",
        "run-child7-i3",
    ]
    assert css(browser, ".tl-row") == []
