"""Scoring generated images with the evaluator: how often does the image show what it was meant to?"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import torch

from .classifier import load_classifier, predict
from .hashing import file_sha256 as streamed_sha256


# Accuracies are k/n stored as float32 (10 of 100 is 0.10000000149): comparisons against a bound
# allow this much, far below 1/n.
ACCURACY_TOLERANCE = 1e-6


@functools.lru_cache(maxsize=4)
def cached_classifier(path: str):
    return load_classifier(path)


@functools.lru_cache(maxsize=16)
def file_sha256(path: str) -> str:
    return streamed_sha256(path)


def class_probabilities(images: torch.Tensor, classifier_path: str) -> torch.Tensor:
    """The digit CNN's softmax over the ten digits for uint8 images (N, 1, 16, 16)."""
    x = images.float() / 127.5 - 1
    with torch.no_grad():
        return cached_classifier(str(classifier_path))(x).softmax(1)


def label_probability(images: torch.Tensor, labels: torch.Tensor, classifier_path: str) -> torch.Tensor:
    """Each image's concept score on the digits model: the evaluator's probability of its intended label."""
    return class_probabilities(images, classifier_path).gather(1, labels.long()[:, None])[:, 0]


_LEARNED_TOKEN = re.compile(r"<[^<>\s]+>(?:_\d+)*")


def learned_token(prompt: str) -> str | None:
    """The first learned token of a prompt ("<zero-diverse-inversion>_003"), None for plain text."""
    match = _LEARNED_TOKEN.search(prompt)
    return match.group(0) if match else None


def values_by_prompt(prompts: list[str], values: list[float]) -> dict[str, list[float]]:
    """Image i's value under its prompt, prompts in their first-seen order."""
    grouped = {}
    for prompt, value in zip(prompts, values, strict=True):
        grouped.setdefault(prompt, []).append(value)
    return grouped


def scores_by_token(scores: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Mean score of the images of each learned token (over every template it was used in)."""
    groups: dict[str, list[float]] = {}
    for score, prompt in zip(scores.tolist(), prompts, strict=True):
        token = learned_token(prompt)
        if token is not None:
            groups.setdefault(token, []).append(score)
    return {token: sum(v) / len(v) for token, v in sorted(groups.items())}


# Where a cell's metrics keep each Erasure Score's concept score (evaluation.erasure_score.score): its mean over the
# cell's images and its mean per learned token.
ERASURE_SCORE_FIELDS = {"probability": ("mean_label_probability", "label_probability_by_token"),
                        "clip-similarity": ("mean_clip_similarity", "clip_similarity_by_token")}


def erasure_score(name_score: float, embedding_scores: dict[str, float]) -> float:
    """The Task-Vector paper's Erasure Score (§5.1): the highest concept score over the images of the
    concept's name and of every Diverse-Inversion embedding. Each source's score is the mean over its
    images (with one image per source, as in the paper, this is the maximum over images)."""
    return max([name_score, *embedding_scores.values()])


def concept_hits(images: torch.Tensor, labels: torch.Tensor, classifier_path: str, min_confidence: float):
    """(hit, predicted label) per image: a hit is an image classified as its intended label with at least `min_confidence`."""
    pred, conf = predict(cached_classifier(str(classifier_path)), images)  # loaded once per job
    return (pred == labels) & (conf >= min_confidence), pred


DIGIT_RULE = "argmax == intended digit"


def summary(hit: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor, evaluator: dict) -> dict:
    """A cell's metrics from its images' hits and predictions: the accuracy (share of hits), per intended class, the
    predicted classes' counts, and the evaluator's fingerprint."""
    return dict(
        accuracy=float(hit.float().mean()),
        images=int(len(labels)),
        per_class_accuracy={int(c): float(hit[labels == c].float().mean()) for c in labels.unique()},
        predicted_counts={int(c): int((predicted == c).sum()) for c in predicted.unique()},
        evaluator=evaluator,
    )


def digit_fingerprint(classifier_path: str, min_confidence: float) -> dict:
    return dict(name="embedded digit CNN", weights=str(classifier_path), weights_tag="trained by rule train_classifier",
                sha256=file_sha256(str(classifier_path)), threshold=min_confidence, classes="digits 0-9", rule=DIGIT_RULE)


def check_digit_images(images: torch.Tensor) -> None:
    if images.shape[1:] != (1, 16, 16):
        raise ValueError(f"the embedded digit classifier scores 16x16 grayscale digits, not images of shape {tuple(images.shape[1:])}; "
                         f"set evaluation.evaluator for this base model (config/sd14.yaml: resnet50)")


def classifier_accuracy(images: torch.Tensor, labels: torch.Tensor, classifier_path: str, min_confidence: float) -> dict:
    """Fraction of images classified as their intended label with at least `min_confidence` (the digit CNN)."""
    check_digit_images(images)
    hit, pred = concept_hits(images, labels, classifier_path, min_confidence)
    return summary(hit, pred, labels, digit_fingerprint(classifier_path, min_confidence))
