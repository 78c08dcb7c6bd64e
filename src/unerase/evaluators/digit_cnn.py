"""The embedded evaluator: the digit CNN the workflow trains (unerase.classifier), through unerase.evaluation's
functions, which the task vector's alpha search and the probes call directly."""
from __future__ import annotations

import torch

from ..digits import load_digit_images
from ..evaluation import cached_classifier, check_digit_images, class_probabilities, digit_fingerprint
from .base import Scores, existing


class DigitCNN:
    def __init__(self, weights: str, min_confidence: float):
        self.weights, self.min_confidence = weights, min_confidence
        self.fingerprint = digit_fingerprint(weights, min_confidence)
        self._reference: dict[tuple[int, ...], tuple[torch.Tensor, str]] = {}

    def score(self, images: torch.Tensor, labels: torch.Tensor) -> Scores:
        """One forward pass: the same hits as unerase.evaluation.concept_hits, the same scores as label_probability."""
        check_digit_images(images)
        probs = class_probabilities(images, self.weights)
        conf, pred = probs.max(1)
        return Scores(predicted=pred, probability=probs.gather(1, labels.long()[:, None])[:, 0],
                      hit=(pred == labels) & (conf >= self.min_confidence))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Generated uint8 digits -> the CNN's 128-d penultimate features (unerase.fid)."""
        check_digit_images(images)
        with torch.no_grad():
            return cached_classifier(self.weights).embed(images.float() / 127.5 - 1)

    def reference_features(self, labels: list[int]) -> tuple[torch.Tensor, str]:
        """The features of every real scikit-learn digit of these classes, and what they are (computed once per
        class set: every model's control cell of a concept asks for the same one)."""
        key = tuple(sorted(labels))
        if key not in self._reference:
            x, y = load_digit_images()
            real = x[torch.isin(y, torch.tensor(key))]
            with torch.no_grad():
                self._reference[key] = (cached_classifier(self.weights).embed(real),
                                        f"{len(real)} scikit-learn digits of classes {','.join(map(str, key))}")
        return self._reference[key]


def load(settings: dict, weights: str | None = None) -> DigitCNN:
    # No default path: a replicate's jobs (replicates/seed-N/) would silently score with the main run's classifier.
    if not weights:
        raise ValueError("digit CNN: no weights file given; the workflow passes its train_classifier output "
                         "(results/evaluator/classifier.safetensors)")
    path = existing(weights, "digit CNN", "run the workflow's train_classifier rule")
    return DigitCNN(path, settings.get("min_confidence", 0.0))
