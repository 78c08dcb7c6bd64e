"""Image sets on disk: a uint8 tensor plus what each image was meant to show, in one safetensors file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_path


def save_image_set(path: str | os.PathLike, images: torch.Tensor, labels: list[int], prompts: list[str], **meta) -> None:
    metadata = {"prompts": json.dumps(prompts), **{k: json.dumps(v) for k, v in meta.items()}}
    with atomic_path(path) as tmp:
        save_file({"images": images.contiguous(), "labels": torch.tensor(labels, dtype=torch.long)}, str(tmp), metadata=metadata)


def load_image_set(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        return f.get_tensor("images"), f.get_tensor("labels"), meta


def load_image_folder(folder: str | os.PathLike, channels: int, size: int) -> torch.Tensor:
    """User-supplied real images (png/jpg), resized to the model's resolution, as uint8 (N, C, H, W)."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
    if not files:
        raise FileNotFoundError(f"no images (png/jpg/webp) in real-image folder {folder}")
    mode = "L" if channels == 1 else "RGB"
    arrays = [np.asarray(Image.open(f).convert(mode).resize((size, size), Image.BICUBIC)) for f in files]
    x = torch.from_numpy(np.stack(arrays))
    return x.unsqueeze(1) if channels == 1 else x.permute(0, 3, 1, 2)


def tile_images(images: torch.Tensor, columns: int, gap: int = 0, fill: int = 0) -> torch.Tensor:
    """uint8 (N, C, H, W) images laid out `columns` across on one (C, H', W') canvas, `gap` pixels of `fill` between them."""
    n, c, h, w = images.shape
    rows = (n + columns - 1) // columns
    canvas = torch.full((c, rows * (h + gap) - gap, columns * (w + gap) - gap), fill, dtype=torch.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        canvas[:, r * (h + gap):r * (h + gap) + h, col * (w + gap):col * (w + gap) + w] = img
    return canvas


def save_grid(path: str | os.PathLike, images: torch.Tensor, columns: int = 10, upscale: int = 4) -> None:
    """A PNG contact sheet of (up to 100) images, for eyes rather than metrics."""
    images = images[:100]
    n, c, h, w = images.shape
    rows = (n + columns - 1) // columns
    arr = tile_images(images, columns).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if c == 1 else arr).resize((columns * w * upscale, rows * h * upscale), Image.NEAREST)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
