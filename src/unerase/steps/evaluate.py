"""Evaluation step: score every generated cell of one concept with the configured evaluator (unerase.evaluators)."""
from __future__ import annotations

from .. import evaluators
from ..atomic import write_json
from ..evaluation import scores_by_token, summary
from ..fid import fid
from ..images_io import load_image_set
from ..progress import log as logger
from ..progress import setup_logging


def run(*, images, metrics, evaluator, settings, cells, classifier=None, threads=1, log=None):
    """`evaluator`: a name of unerase.evaluators.EVALUATORS with its config `settings`; `classifier`: the digit CNN's
    weights where the workflow trains them (else the evaluator finds its weights from `settings`)."""
    setup_logging(log)
    scorer = evaluators.load(evaluator, settings, classifier)
    logger.info("evaluator: %s (%s, sha256 %s)", scorer.fingerprint["name"], scorer.fingerprint["weights"], scorer.fingerprint["sha256"][:12])
    for image_path, metrics_path, cell in zip(images, metrics, cells, strict=True):
        x, labels, meta = load_image_set(image_path)
        scores = scorer.score(x, labels)
        result = summary(scores.hit, scores.predicted, labels, scorer.fingerprint)
        # concept scores for the Erasure Score: the mean, and per learned token where the prompts carry them
        result["mean_label_probability"] = float(scores.probability.mean())
        if by_token := scores_by_token(scores.probability, meta.get("prompts", [])):
            result["label_probability_by_token"] = by_token
        if "guidance_scale" in meta:  # the scale the cell was drawn at (a set may have its own: Concept Inversion on FMN)
            result["guidance_scale"] = meta["guidance_scale"]
        if cell["prompt_set"] == "control" and hasattr(scorer, "reference_features"):
            # image quality where erasure should leave the model alone: FID against real images of those classes
            reference, described = scorer.reference_features(sorted(set(labels.tolist())))
            result["fid"], result["fid_reference"] = fid(scorer.features(x), reference), described
        logger.info("%s/%s/%s: accuracy %.3f", cell["concept"], cell["model"], cell["prompt_set"], result["accuracy"])
        write_json(metrics_path, {**result, **cell})
