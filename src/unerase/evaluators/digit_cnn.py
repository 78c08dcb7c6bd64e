"""The embedded evaluator: the digit CNN the workflow trains (unerase.classifier), through unerase.evaluation's
functions, which the task vector's alpha search and the probes call directly."""
from __future__ import annotations

import torch

from ..digits import load_digit_images
from ..evaluation import cached_classifier, check_digit_images, concept_hits, digit_fingerprint, label_probability
from .base import Scores, existing


class DigitCNN:
    def __init__(self, weights: str, min_confidence: float):
        self.weights, self.min_confidence = weights, min_confidence
        self.fingerprint = digit_fingerprint(weights, min_confidence)

    def score(self, images: torch.Tensor, labels: torch.Tensor) -> Scores:
        check_digit_images(images)
        hit, pred = concept_hits(images, labels, self.weights, self.min_confidence)
        return Scores(predicted=pred, probability=label_probability(images, labels, self.weights), hit=hit)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Generated uint8 digits -> the CNN's 128-d penultimate features (unerase.fid)."""
        check_digit_images(images)
        with torch.no_grad():
            return cached_classifier(self.weights).embed(images.float() / 127.5 - 1)

    def reference_features(self, labels: list[int]) -> tuple[torch.Tensor, str]:
        """The features of every real scikit-learn digit of these classes, and what they are."""
        x, y = load_digit_images()
        real = x[torch.isin(y, torch.tensor(labels))]
        with torch.no_grad():
            return cached_classifier(self.weights).embed(real), f"{len(real)} scikit-learn digits of classes {','.join(map(str, labels))}"


def load(settings: dict, weights: str | None = None) -> DigitCNN:
    path = existing(weights or "results/evaluator/classifier.safetensors", "digit CNN", "run the workflow's train_classifier rule")
    return DigitCNN(path, settings.get("min_confidence", 0.0))
