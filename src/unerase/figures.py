"""Figures of the audit (matplotlib, no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def alpha_tradeoff(records: dict[str, dict], path: str) -> None:
    """The task vector's α against the Erasure Score and the control classes' accuracy, one line per
    concept, the chosen α marked (TV paper Fig. 4 / Fig. 12): `records` are tv-es erasure.json files."""
    fig, (es_ax, control_ax) = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    for concept, rec in records.items():
        alphas = [c["alpha"] for c in rec["candidates"]]
        chosen = next(c for c in rec["candidates"] if c["alpha"] == rec["alpha"])
        line, = es_ax.plot(alphas, [c["erasure_score"] for c in rec["candidates"]], marker="o", label=concept)
        control_ax.plot(alphas, [c["control"] for c in rec["candidates"]], marker="o", color=line.get_color(), label=concept)
        es_ax.plot([rec["alpha"]], [chosen["erasure_score"]], marker="*", markersize=14, color=line.get_color())
        control_ax.plot([rec["alpha"]], [chosen["control"]], marker="*", markersize=14, color=line.get_color())
    any_rec = next(iter(records.values()))
    es_ax.axhline(any_rec["max_erasure_score"], linestyle="--", color="grey")
    control_ax.axhline(any_rec["min_control_accuracy"], linestyle="--", color="grey")
    es_ax.set(xlabel="alpha", ylabel="Erasure Score", title="concept (lower: more robust)", ylim=(0, 1.02))
    control_ax.set(xlabel="alpha", ylabel="accuracy on the other classes", title="control (higher: more usable)", ylim=(0, 1.02))
    es_ax.legend(title="concept (* = chosen alpha)", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
