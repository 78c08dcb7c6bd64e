"""Markdown tables as HTML pages for the Snakemake report, which shows images, HTML and PDF inline
and other files only as downloads. markdown-it-py (CommonMark with GitHub tables) does the parsing."""
from __future__ import annotations

import html

from markdown_it import MarkdownIt

STYLE = """body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }"""


def markdown_page(markdown: str, title: str) -> str:
    """A standalone HTML page of `markdown` (its text and tables) headed `title`."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")
