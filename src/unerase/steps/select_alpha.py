"""Choosing the task vector's α from the α grid's generations (no diffusion model is loaded)."""
from __future__ import annotations

import shutil

from ..atomic import atomic_path, write_json
from ..evaluation import ACCURACY_TOLERANCE, classifier_accuracy
from ..images_io import load_image_set
from ..progress import log as logger
from ..progress import setup_logging


def choose_alpha(results: list[dict], max_target: float, min_control: float) -> tuple[float, str]:
    """The smallest α whose erased model meets both criteria; failing that, the α with the lowest
    concept accuracy among those keeping the control classes, else the lowest concept accuracy."""
    tol = ACCURACY_TOLERANCE
    ok = [r for r in results if r["target"] <= max_target + tol and r["control"] >= min_control - tol]
    if ok:
        return min(ok, key=lambda r: r["alpha"])["alpha"], "smallest alpha meeting both criteria"
    keep = [r for r in results if r["control"] >= min_control - tol] or results
    best = min(keep, key=lambda r: (r["target"], r["alpha"]))
    return best["alpha"], "no alpha met both criteria: lowest concept accuracy" + (" keeping control" if keep is not results else "")


def _argmax_accuracy(images: str, classifier: str) -> float:
    x, labels, _ = load_image_set(images)
    return classifier_accuracy(x, labels, classifier, min_confidence=0.0)["accuracy"]


def run_select(*, patches, name_images, control_images, classifier, selected, choice, alphas, max_target_accuracy,
               min_control_accuracy, threads=1, log=None):
    setup_logging(log)
    results = [dict(alpha=float(a), target=_argmax_accuracy(n, classifier), control=_argmax_accuracy(c, classifier))
               for a, n, c in zip(alphas, name_images, control_images)]
    alpha, why = choose_alpha(results, max_target_accuracy, min_control_accuracy)
    logger.info("task vector: chose alpha %s (%s) from %s", alpha, why, results)
    with atomic_path(selected) as tmp:
        shutil.copyfile(patches[[float(a) for a in alphas].index(alpha)], tmp)
    write_json(choice, dict(alpha=alpha, reason=why, candidates=results, max_target_accuracy=max_target_accuracy,
                            min_control_accuracy=min_control_accuracy))
