"""Figures of the audit (matplotlib, no display needed)."""
from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def alpha_tradeoff(records: dict[str, dict], path: str) -> None:
    """The task vector's α against the Erasure Score and the control classes' accuracy, one line per
    concept, the chosen α marked (TV paper Fig. 4 / Fig. 12): `records` are tv-es erasure.json files. Where the α
    search also scored the control task's prompts (evaluation.control_task.prompts), a third panel: their mean CLIP
    similarity, the paper's own control axis."""
    panels = [("erasure_score", "max_erasure_score"), ("control", "min_control_accuracy")]
    if any("control_similarity" in c for rec in records.values() for c in rec["candidates"]):
        panels.append(("control_similarity", "min_control_similarity"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), constrained_layout=True, squeeze=False)
    for concept, rec in records.items():
        alphas = [c["alpha"] for c in rec["candidates"]]
        chosen = next(c for c in rec["candidates"] if c["alpha"] == rec["alpha"])
        color = None
        for ax, (key, _) in zip(axes.flat, panels):
            if key not in chosen:  # a concept whose every control prompt names it has no control-task score
                continue
            line, = ax.plot(alphas, [c[key] for c in rec["candidates"]], marker="o", color=color, label=concept)
            color = line.get_color()
            ax.plot([rec["alpha"]], [chosen[key]], marker="*", markersize=14, color=color)
    any_rec = next(iter(records.values()))
    for ax, (_, bound) in zip(axes.flat, panels):
        if any_rec.get(bound) is not None:
            ax.axhline(any_rec[bound], linestyle="--", color="grey")
    by = {"clip-similarity": " (CLIP similarity)"}.get(any_rec.get("erasure_score_by"), " (concept probability)")
    es_ax, control_ax = axes.flat[0], axes.flat[1]
    es_ax.set(xlabel="alpha", ylabel="Erasure Score" + by, title="concept (lower: more robust)", ylim=(0, 1.02))
    control_ax.set(xlabel="alpha", ylabel="accuracy on the other classes", title="control (higher: more usable)", ylim=(0, 1.02))
    if len(panels) == 3:
        axes.flat[2].set(xlabel="alpha", ylabel="CLIP similarity to its own prompt", title="control task prompts (higher: more usable)")
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


def tile(images, per_row: int = 2, max_side: int = 96) -> np.ndarray:
    """The first images of a cell as one (H, W[, 3]) uint8 tile, `per_row` across, each at most `max_side` pixels
    (SD 1.4's 512-pixel images are shrunk with antialiasing; the embedded model's 16-pixel digits stay as drawn)."""
    import torch
    import torch.nn.functional as F

    from .images_io import tile_images

    x = images
    if x.shape[-1] > max_side:
        x = F.interpolate(x.float(), size=(max_side, max_side), mode="bilinear", antialias=True).round().clamp(0, 255).to(torch.uint8)
    arr = tile_images(x, per_row, gap=1, fill=255).permute(1, 2, 0).numpy()  # 1-pixel white gaps
    return arr[..., 0] if x.shape[1] == 1 else arr


def audit_overview(path: str, concept: str, cells: dict, models: list[str], prompt_sets: list[str],
                   model_labels: dict[str, str], set_labels: dict[str, str]) -> None:
    """One concept's audit at a glance, in the layout of the papers' qualitative figures (CCE Fig. 1, TV paper
    Fig. 5): a row per model, a column per prompt set (the name, each attack, the other classes), each cell its
    first images and the evaluator's accuracy on the whole cell. `cells[(model, prompt_set)] = (images, accuracy)`."""
    fig, axes = plt.subplots(len(models), len(prompt_sets), figsize=(1.25 * len(prompt_sets) + 0.8, 1.35 * len(models) + 0.6),
                             squeeze=False, constrained_layout=True)
    for r, model in enumerate(models):
        for c, prompt_set in enumerate(prompt_sets):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if (model, prompt_set) not in cells:
                ax.axis("off")
                continue
            images, accuracy = cells[(model, prompt_set)]
            picture = tile(images)
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xlabel(f"{100 * accuracy:.0f} %", fontsize=7, labelpad=1)
            if r == 0:
                ax.set_title(textwrap.fill(set_labels.get(prompt_set, prompt_set), 18), fontsize=7)  # long attack names wrap
            if c == 0:
                ax.set_ylabel(model_labels.get(model, model), fontsize=7)
    fig.suptitle(f"{concept}: first images of each cell; below each, the share the evaluator reads as intended", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def diverse_inversion_figure(path: str, concept: str, embeddings: list[dict], scores_by_model: dict[str, dict[int, float]],
                             labels: dict[str, str] | None = None, score: str = "probability") -> None:
    """The TV paper's Diverse Inversion (§4.1) read against the audit: left, how far the kept embeddings lie from
    the concept name's (cosine similarity to its token embedding); right, each embedding's concept score on each
    model against that similarity — an embedding far from the name that still draws the concept is what makes
    the name-only evaluation optimistic. `embeddings`: the attack record's (index, similarity_to_concept, kept);
    `scores_by_model[model][index]`: the mean concept score of that embedding's images (`score`: the evaluator's
    probability, in %, or the CLIP similarity to the name, as it is)."""
    labels = labels or {}
    kept = sorted((e for e in embeddings if e.get("kept", True)), key=lambda e: e["similarity_to_concept"])
    fig, (hist_ax, score_ax) = plt.subplots(1, 2, figsize=(9.5, 3.2), constrained_layout=True)
    hist_ax.hist([e["similarity_to_concept"] for e in kept], bins=np.linspace(-1, 1, 21), color="tab:grey")
    hist_ax.set(xlabel="cosine similarity to the name's embedding", ylabel="kept embeddings", title=f"{concept}: {len(kept)} embeddings")
    x = [e["similarity_to_concept"] for e in kept]
    scale = 100 if score == "probability" else 1
    for model, scores in scores_by_model.items():
        score_ax.plot(x, [scale * scores.get(e["index"], float("nan")) for e in kept], marker="o", markersize=4, linestyle="none",
                      alpha=0.8, label=labels.get(model, model))
    score_ax.set(xlabel="cosine similarity to the name's embedding", title="per embedding and model",
                 ylabel="concept probability of its images (%)" if score == "probability" else "CLIP similarity of its images to the name")
    if score == "probability":
        score_ax.set_ylim(-3, 103)
    score_ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def crr_heatmap(path: str, rates: "np.ndarray", rows: list[str], columns: list[str], title: str) -> None:
    """M-ErasureBench's Concept Reproduction Rate grid as a heat map: `rates` (len(rows), len(columns)) in [0, 1]
    (NaN: not measured), each cell annotated in %."""
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.2, 0.38 * len(rows) + 1.6), constrained_layout=True)
    image = ax.imshow(100 * rates, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for r in range(len(rows)):
        for c in range(len(columns)):
            if not np.isnan(rates[r, c]):
                ax.text(c, r, f"{100 * rates[r, c]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if rates[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, label="concept reproduction rate (%)", shrink=0.8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
