"""The embedded evaluator: a small CNN that tells which digit an image shows."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .digits import load_digit_images, split_indices
from .progress import Progress, log


class DigitClassifier(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d penultimate features (after the hidden layer's ReLU): the digits' FID space."""
        return self.head[:-1](self.features(x))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to one pixel: generated digits are not always centred like the scans."""
    dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train_classifier(out_path: str, *, steps: int, batch_size: int, lr: float, test_fraction: float, seed: int) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = load_digit_images()
    train_idx, test_idx = split_indices(len(x), test_fraction, seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    progress = Progress("classifier", steps)
    for step in range(steps):
        model.train()
        idx = train_idx[torch.randint(0, len(train_idx), (batch_size,), generator=gen)]
        loss = F.cross_entropy(model(_augment(x[idx], gen)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(step, loss.item())
    report = dict(held_out_accuracy=accuracy(model, x[test_idx], y[test_idx]), held_out_images=len(test_idx),
                  train_images=len(train_idx), seed=seed, steps=steps)
    log.info("classifier: held-out accuracy %.4f on %d images", report["held_out_accuracy"], len(test_idx))
    with atomic_path(out_path) as tmp:
        save_file(model.state_dict(), str(tmp))
    return report


def load_classifier(path: str) -> DigitClassifier:
    model = DigitClassifier()
    model.load_state_dict(load_file(path))
    return model.eval()


def predict(model: nn.Module, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, its softmax probability) for uint8 images (N, 1, 16, 16)."""
    x = images_uint8.float() / 127.5 - 1
    with torch.no_grad():
        probs = model(x).softmax(1)
    conf, pred = probs.max(1)
    return pred, conf
