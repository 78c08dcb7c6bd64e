"""The base model manifest: which folder or hub id every later step loads."""
from __future__ import annotations

from ..atomic import write_json
from ..base_model_check import check_base_model
from ..progress import setup_logging


def run(*, manifest, source, path, model=None, threads=1, log=None):
    setup_logging(log)
    ref = model if source == "embedded" else path
    check_base_model(ref)  # one clear line naming what to provide, before any GPU job starts
    write_json(manifest, {"source": source, "path": str(ref)})
