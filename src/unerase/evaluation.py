"""Scoring generated images with the evaluator: how often does the image show what it was meant to?"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch

from .classifier import load_classifier, predict


# Accuracies are k/n stored as float32 (10 of 100 is 0.10000000149): comparisons against a bound
# allow this much, far below 1/n.
ACCURACY_TOLERANCE = 1e-6


@functools.lru_cache(maxsize=4)
def _classifier(path: str):
    return load_classifier(path)


@functools.lru_cache(maxsize=16)
def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def classifier_accuracy(images: torch.Tensor, labels: torch.Tensor, classifier_path: str, min_confidence: float) -> dict:
    """Fraction of images classified as their intended label with at least `min_confidence`."""
    if images.shape[1:] != (1, 16, 16):
        raise ValueError(f"the embedded digit classifier scores 16x16 grayscale digits, not images of shape "
                         f"{tuple(images.shape[1:])}; the SD 1.4 evaluators (ResNet-50, CLIP, NudeNet) are not implemented yet")
    pred, conf = predict(_classifier(str(classifier_path)), images)  # loaded once per job
    hit = (pred == labels) & (conf >= min_confidence)
    per_class = {int(c): float(hit[labels == c].float().mean()) for c in labels.unique()}
    return dict(
        accuracy=float(hit.float().mean()),
        images=int(len(labels)),
        per_class_accuracy=per_class,
        predicted_counts={int(c): int((pred == c).sum()) for c in pred.unique()},
        evaluator=dict(name="embedded digit CNN", weights=str(classifier_path), sha256=file_sha256(str(classifier_path)),
                       rule="argmax == intended digit", min_confidence=min_confidence),
    )
