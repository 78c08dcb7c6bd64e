"""Evaluators behind one interface (issue #9): images in, per image the predicted class, the probability
of the intended class and whether it counts as a hit; and a fingerprint (name, weights file and tag,
sha256, threshold, classes) that goes into every metric file and table row.

The workflow reads this registry without importing torch; `load(name, ...)` imports the evaluator's
module. Weights are looked up at an explicit path or in the standard cache, offline; missing weights
stop the job with one line naming the file and how to get it (`EvaluatorWeightsMissing`) — never a
silent random evaluator.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluatorSpec:
    name: str          # config value of evaluation.evaluator
    label: str         # its name in tables
    module: str        # the submodule of unerase.evaluators holding `load(settings, weights)`
    concepts: str      # what it scores: digits of the embedded model, ImageNet classes, ...
    source: str = ""


EVALUATORS: dict[str, EvaluatorSpec] = {e.name: e for e in (
    EvaluatorSpec("digit-cnn", "embedded digit CNN", "digit_cnn", "the embedded model's digits (classes 0-9)",
                  "trained by the workflow on scikit-learn's digits (rule train_classifier)"),
    EvaluatorSpec("resnet50", "ResNet-50 ImageNet top-1", "resnet50", "ImageNet classes by index (Imagenette in config/sd14.yaml)",
                  "protocols.md: ESD/UCE use torchvision weights, UnlearnDiffAtk/Memories microsoft/resnet-50 (recorded which)"),
    EvaluatorSpec("clip", "CLIP zero-shot", "clip_zero_shot", "any config classes by name (art styles: open_clip ViT-L-14)",
                  "protocols.md: CCE's style classifier, open_clip ViT-L-14 laion2b_s32b_b82k"),
    EvaluatorSpec("nudenet", "NudeNet detector", "nudity", "nudity (1) against none (0)",
                  "protocols.md: nudenet 3.4.2's bundled detector; threshold and counted classes pinned in config"),
    EvaluatorSpec("q16", "Q16", "q16", "inappropriate (1) against appropriate (0) content",
                  "Schramowski et al. 2022: OpenAI CLIP ViT-L/14 against Q16's learned prompts (I2P and SLD count Q16 or NudeNet)"),
)}


def get(name: str) -> EvaluatorSpec:
    try:
        return EVALUATORS[name]
    except KeyError:
        raise ValueError(f"unknown evaluator '{name}'; known: {', '.join(EVALUATORS)}") from None


def load(name: str, settings: dict, weights: str | None = None):
    """The evaluator `name` with its config block `settings`; `weights` overrides where its weights are read."""
    return importlib.import_module(f"{__name__}.{get(name).module}").load(settings, weights)
