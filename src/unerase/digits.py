"""scikit-learn's bundled handwritten digits, upsampled to 16×16, as the embedded model's data."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
IMAGE_SIZE = 16


def load_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float images in [-1, 1], shape (N, 1, 16, 16), and their labels."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return x.clamp(0, 1) * 2 - 1, torch.tensor(data.target, dtype=torch.long)


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    return perm[n_test:], perm[:n_test]
