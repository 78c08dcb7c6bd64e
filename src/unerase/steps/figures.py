"""Figure step: the task vector's alpha / Erasure Score / control trade-off."""
from __future__ import annotations

from ..atomic import read_json
from ..figures import alpha_tradeoff
from ..progress import setup_logging


def run(*, records, figure, concepts, threads=1, log=None):
    setup_logging(log)
    alpha_tradeoff({c: read_json(r) for c, r in zip(concepts, records, strict=True)}, figure)
