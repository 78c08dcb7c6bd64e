"""Report step: a Markdown table as an HTML page (no torch: one short job per table)."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path
from ..progress import setup_logging
from ..report_pages import markdown_page


def run(*, markdown, page, title, threads=1, log=None):
    """The Snakemake report shows HTML inline and .md only as a download."""
    setup_logging(log)
    with atomic_path(page) as tmp:
        tmp.write_text(markdown_page(Path(markdown).read_text(), title))
