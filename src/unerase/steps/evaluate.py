"""Evaluation step: score every generated cell of one concept with the evaluator."""
from __future__ import annotations

from ..atomic import write_json
from ..evaluation import classifier_accuracy
from ..images_io import load_image_set
from ..progress import log as logger
from ..progress import setup_logging


def run(*, images, classifier, metrics, min_confidence, cells, threads=1, log=None):
    setup_logging(log)
    for image_path, metrics_path, cell in zip(images, metrics, cells, strict=True):
        x, labels, _ = load_image_set(image_path)
        result = classifier_accuracy(x, labels, classifier, min_confidence)
        logger.info("%s/%s/%s: accuracy %.3f", cell["concept"], cell["model"], cell["prompt_set"], result["accuracy"])
        write_json(metrics_path, {**result, **cell})
