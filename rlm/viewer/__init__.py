"""The trajectory viewer: a trace as a self-contained web page (`rlm view`)."""

from rlm.viewer.model import NotATrace, Page, PageBuilder, read_trace
from rlm.viewer.render import render_html

__all__ = ["NotATrace", "Page", "PageBuilder", "read_trace", "render_html"]
