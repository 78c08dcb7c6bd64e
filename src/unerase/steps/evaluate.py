"""Evaluation step: score every generated cell of one concept with the evaluator."""
from __future__ import annotations

from ..atomic import write_json
from ..evaluation import classifier_accuracy, label_probability, scores_by_token
from ..images_io import load_image_set
from ..progress import log as logger
from ..progress import setup_logging


def run(*, images, classifier, metrics, min_confidence, cells, threads=1, log=None):
    setup_logging(log)
    for image_path, metrics_path, cell in zip(images, metrics, cells, strict=True):
        x, labels, meta = load_image_set(image_path)
        result = classifier_accuracy(x, labels, classifier, min_confidence)
        # concept scores for the Erasure Score: the mean, and per learned token where the prompts carry them
        scores = label_probability(x, labels, classifier)
        result["mean_label_probability"] = float(scores.mean())
        if by_token := scores_by_token(scores, meta.get("prompts", [])):
            result["label_probability_by_token"] = by_token
        logger.info("%s/%s/%s: accuracy %.3f", cell["concept"], cell["model"], cell["prompt_set"], result["accuracy"])
        write_json(metrics_path, {**result, **cell})
