"""The page: one self-contained HTML file, the page model inlined as JSON.

Nothing is fetched from anywhere (the file works offline and as an attachment). The
model's text reaches the page only as JSON in a non-executable script element, with
`<`, `>` and `&` escaped so no reply or output can close that element; the script builds
the DOM with text nodes only. The Content-Security-Policy admits our one script by its
hash, so even markup that slipped through could not run code.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from typing import Any

_ASSETS = resources.files("rlm.viewer") / "assets"
# The scripts of each kind of page, joined in this order into one function scope.
_SCRIPTS = {
    "trace": ("common.js", "highlight.js", "trace.js"),
    "results": ("common.js", "results.js"),
}


def render_html(page: dict[str, Any], *, live: bool = False) -> str:
    """The HTML of a page model (`Page.to_json()` or `ResultsPage.to_json()`); `live`
    makes a trace's page follow the server."""
    parts = [(_ASSETS / name).read_text(encoding="utf-8") for name in _SCRIPTS[page["kind"]]]
    script = '"use strict";\n(function () {\n' + "\n".join(parts) + "})();\n"
    style = (_ASSETS / "viewer.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; connect-src 'self'"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>rlm trace: {html.escape(page['source'])}</title>\n"
        f"<style>{style}</style></head>\n<body>\n"
        "<noscript>This page needs JavaScript to show the trace.</noscript>\n"
        f'<script type="application/json" id="rlm-data">{page_json(page, live=live)}</script>\n'
        f"<script>{script}</script>\n</body></html>\n"
    )


def page_json(page: dict[str, Any], *, live: bool = False) -> str:
    """The page model as JSON that is safe inside a script element."""
    text = json.dumps({**page, "live": live}, ensure_ascii=True, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
