"""Evaluation step: score every generated cell of one concept with the configured evaluator (unerase.evaluators)."""
from __future__ import annotations

from .. import evaluators
from ..evaluators import clip_similarity
from ..atomic import write_json
from ..evaluation import scores_by_token, summary
from ..evaluators.quality import load_control_fid
from ..images_io import load_image_set
from ..progress import log as logger
from ..progress import setup_logging
from ..runtime import configure_threads


def run(*, images, metrics, evaluator, settings, cells, erasure_score=None, fid=None, classes=None, classifier=None, scoring_files=(),
        threads=1, log=None):
    """`evaluator`: a name of unerase.evaluators.EVALUATORS with its config `settings`; `classifier`: the digit CNN's
    weights where the workflow trains them (else the evaluator finds its weights from `settings`). `erasure_score`:
    the block evaluation.erasure_score (score clip-similarity adds each cell's CLIP similarity to its class names,
    `classes`); `fid`: the block evaluation.fid (control cells' FID; default the evaluator's features). `scoring_files`:
    the FID reference and Q16's prompts as the rule's inputs (a changed file re-scores); read through their blocks."""
    setup_logging(log)
    configure_threads(threads)
    scorer = evaluators.load(evaluator, settings, classifier)
    logger.info("evaluator: %s (%s, sha256 %s)", scorer.fingerprint["name"], scorer.fingerprint["weights"], scorer.fingerprint["sha256"][:12])
    similarity = clip_similarity.for_erasure_score(erasure_score, classes or {})
    if similarity is not None:
        logger.info("Erasure Score by %s (sha256 %s)", similarity.fingerprint["name"], similarity.fingerprint["sha256"][:12])
    # no block (a direct call): the evaluator's own features where it has a real set (the digit CNN), else no FID
    control_fid = load_control_fid(fid or {"features": "evaluator" if hasattr(scorer, "reference_features") else "none"}, scorer)
    for image_path, metrics_path, cell in zip(images, metrics, cells, strict=True):
        x, labels, meta = load_image_set(image_path)
        scores = scorer.score(x, labels)
        result = summary(scores.hit, scores.predicted, labels, scorer.fingerprint)
        # concept scores for the Erasure Score: the mean, and per learned token where the prompts carry them
        result["mean_label_probability"] = float(scores.probability.mean())
        if by_token := scores_by_token(scores.probability, meta.get("prompts", [])):
            result["label_probability_by_token"] = by_token
        if similarity is not None:  # the TV paper's CLIP similarity to the class name (its Erasure Score and control task)
            sim = similarity.similarity(x, labels)
            result["mean_clip_similarity"], result["similarity_evaluator"] = float(sim.mean()), similarity.fingerprint
            if by_token := scores_by_token(sim, meta.get("prompts", [])):
                result["clip_similarity_by_token"] = by_token
        if "guidance_scale" in meta:  # the scale the cell was drawn at (a set may have its own: Concept Inversion on FMN)
            result["guidance_scale"] = meta["guidance_scale"]
        if cell["prompt_set"] == "control" and control_fid is not None:
            # image quality where erasure should leave the model alone: FID against real images of those classes
            result.update(control_fid(x, labels))
        logger.info("%s/%s/%s: accuracy %.3f", cell["concept"], cell["model"], cell["prompt_set"], result["accuracy"])
        write_json(metrics_path, {**result, **cell})
