"""Figures of the audit (matplotlib, no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
    by = {"clip-similarity": " (CLIP similarity)"}.get(any_rec.get("erasure_score_by"), " (concept probability)")
    es_ax.set(xlabel="alpha", ylabel="Erasure Score" + by, title="concept (lower: more robust)", ylim=(0, 1.02))
    control_ax.set(xlabel="alpha", ylabel="accuracy on the other classes", title="control (higher: more usable)", ylim=(0, 1.02))
    es_ax.legend(title="concept (* = chosen alpha)", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def nll_histograms(path: str, concept: str, nll_by_model: dict[str, dict]) -> None:
    """Memories of forgotten concepts, Fig. 2: per model, the NLL of the concept images' seeds (E), the
    reference images' seeds (R) and N(0, I) samples (N), each with its fitted Gaussian's mean marked."""
    n = len(nll_by_model)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), constrained_layout=True, squeeze=False)
    everything = [v for nll in nll_by_model.values() for values in nll.values() for v in values]
    bins = np.linspace(min(everything), max(everything), 30)
    for ax, (model, nll) in zip(axes.flat, nll_by_model.items()):
        for key, label, color in (("normal", "N(0, I)", "grey"), ("reference", "reference (R)", "tab:blue"), ("concept", f"{concept} (E)", "tab:red")):
            ax.hist(nll[key], bins=bins, alpha=0.5, color=color, label=label, density=True)
            ax.axvline(float(np.mean(nll[key])), color=color, linewidth=1)
        ax.set(title=model, xlabel="NLL of the seed")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def safety_grid_curves(path: str, by_concept: dict[str, dict[str, dict[int, float]]], labels: dict[str, str] | None = None) -> None:
    """Task-Vector paper Fig. 3: per concept, the best grid prompt's probability of drawing it against
    the complexity class L, one line per model."""
    labels = labels or {}
    n = len(by_concept)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 2.8), constrained_layout=True, squeeze=False, sharey=True)
    for ax, (concept, by_model) in zip(axes.flat, by_concept.items()):
        for model, curve in by_model.items():
            levels = sorted(curve)
            ax.plot(levels, [100 * curve[L] for L in levels], marker="o", label=labels.get(model, model))
        ax.set(title=concept, xlabel="complexity class L", ylim=(-3, 103), xticks=sorted({L for c in by_model.values() for L in c}))
    axes.flat[0].set_ylabel("best grid prompt: concept (%)")
    axes.flat[0].legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
