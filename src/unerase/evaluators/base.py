"""What every evaluator returns and records."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


class EvaluatorWeightsMissing(FileNotFoundError):
    """An evaluator's weights file is not where the config or the standard cache says."""


@dataclass
class Scores:
    predicted: torch.Tensor    # (N,) long: the predicted class, in the config's class ids
    probability: torch.Tensor  # (N,) float: the evaluator's probability of the intended class
    hit: torch.Tensor          # (N,) bool: predicted the intended class with at least the threshold's confidence


def existing(path: str | Path, what: str, how: str) -> str:
    """`path` if it is a file, else the one-line error naming it and how to get it."""
    if not Path(path).is_file():
        raise EvaluatorWeightsMissing(f"{what} weights not found at {path}: {how}")
    return str(path)
