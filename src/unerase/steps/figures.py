"""Figure steps: the task vector's alpha / Erasure Score / control trade-off; the memories probe's NLL histograms; the
unconditional-safety grid's curves."""
from __future__ import annotations

from ..atomic import read_json
from ..figures import alpha_tradeoff, nll_histograms, safety_grid_curves
from ..progress import setup_logging


def run(*, records, figure, concepts, threads=1, log=None):
    setup_logging(log)
    alpha_tradeoff({c: read_json(r) for c, r in zip(concepts, records, strict=True)}, figure)


def memories(*, record, figure, threads=1, log=None):
    """The memories probe's NLL histograms, one panel per model."""
    setup_logging(log)
    rec = read_json(record)
    nll_histograms(figure, rec["concept"], {m: r["nll"] for m, r in rec["models"].items()})


def safety_grid(*, records, figure, concepts, method_labels, threads=1, log=None):
    """The unconditional-safety grid's curves, one panel per concept."""
    setup_logging(log)
    curves = {}
    for c, r in zip(concepts, records, strict=True):
        rec = read_json(r)
        curves[c] = {m: {int(L): v["probability"] for L, v in by_class.items()} for m, by_class in rec["models"].items()}
    safety_grid_curves(figure, curves, {"base": "original", **method_labels})

