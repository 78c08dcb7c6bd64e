"""Figure steps over the generated images and their metrics: each concept's audit overview, Diverse Inversion's
embeddings against what they draw on each model."""
from __future__ import annotations

from ..atomic import read_json
from ..progress import setup_logging


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


def diverse_inversion(*, record, metrics, figure, concept, models, model_labels, erasure_score_by="probability", threads=1, log=None):
    """Diverse Inversion's similarity histogram and each embedding's concept score per model (`metrics`: each model's
    diverse-inversion cell, in the order of `models`), by the score the Erasure Score reads (evaluation.erasure_score.score:
    the evaluator's probability, or CLIP similarity as in config/sd14.yaml)."""
    import re

    from ..evaluation import ERASURE_SCORE_FIELDS
    from ..figures import diverse_inversion_figure

    setup_logging(log)
    token_key = ERASURE_SCORE_FIELDS[erasure_score_by][1]
    scores = {}
    for model, path in zip(models, metrics, strict=True):
        by_token = read_json(path).get(token_key, {})
        # tokens keep the record's embedding index as their suffix ("<zero-diverse-inversion>_007")
        scores[model] = {int(re.search(r"_(\d+)$", token).group(1)): value for token, value in by_token.items()}
    diverse_inversion_figure(figure, concept, read_json(record)["embeddings"], scores, model_labels, score=erasure_score_by)
