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


def overview(*, images, metrics, figure, concept, cells, model_labels, set_labels, per_cell=4, threads=1, log=None):
    """One concept's audit overview: `cells` [{model, prompt_set}] in the order of `images` and `metrics`."""
    from ..figures import audit_overview
    from ..images_io import load_image_set

    setup_logging(log)
    drawn = {}
    for cell, image_path, metrics_path in zip(cells, images, metrics, strict=True):
        x, _, _ = load_image_set(image_path)
        drawn[(cell["model"], cell["prompt_set"])] = (x[:per_cell], read_json(metrics_path)["accuracy"])
    models = list(dict.fromkeys(c["model"] for c in cells))
    sets = list(dict.fromkeys(c["prompt_set"] for c in cells))
    audit_overview(figure, concept, drawn, models, sets, model_labels, set_labels)


def diverse_inversion(*, record, metrics, figure, concept, models, model_labels, threads=1, log=None):
    """Diverse Inversion's similarity histogram and each embedding's concept score per model (`metrics`: each model's
    diverse-inversion cell, in the order of `models`)."""
    import re

    from ..figures import diverse_inversion_figure

    setup_logging(log)
    scores = {}
    for model, path in zip(models, metrics, strict=True):
        by_token = read_json(path).get("label_probability_by_token", {})
        # tokens keep the record's embedding index as their suffix ("<zero-diverse-inversion>_007")
        scores[model] = {int(re.search(r"_(\d+)$", token).group(1)): value for token, value in by_token.items()}
    diverse_inversion_figure(figure, concept, read_json(record)["embeddings"], scores, model_labels)


def crr_grid(*, long_csv, figure, methods, method_labels, attacks, threads=1, log=None):
    """M-ErasureBench's CRR grid (models by modality and access, each the mean over concepts) as a heat map, from
    accuracy.csv; `attacks`: prompt set -> {label, access, modality}."""
    import numpy as np
    import pandas as pd

    from ..figures import crr_heatmap
    from ..tables import modality_order

    setup_logging(log)
    df = pd.read_csv(long_csv)
    rows, columns = modality_order(["base", *methods], attacks)
    mean = df.groupby(["model", "prompt_set"])["accuracy"].mean()
    rates = np.array([[mean.get((m, s), np.nan) for s in columns] for m in rows], dtype=float)
    labels = {"name": "text · prompt: name"} | {s: f"{a['modality']} · {a['access']}: {a['label']}" for s, a in attacks.items()}
    concepts = " / ".join(df["concept"].unique())
    crr_heatmap(figure, rates, [method_labels.get(m, m) for m in rows], [labels[s] for s in columns],
                f"Concept reproduction rate, mean over {concepts} (M-ErasureBench's grid)")
