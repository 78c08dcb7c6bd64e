"""Image sets on disk: a uint8 tensor plus what each image was meant to show, in one safetensors file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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


GRID_TILE = (64, 128)  # a contact sheet's tile side in pixels: smaller images are enlarged, larger ones reduced


def grid_tile(h: int, w: int) -> tuple[int, int]:
    """A tile's (height, width) on a contact sheet: 16-px digits x4 (pixels kept sharp), SD's 512-px images reduced to
    128 px, so a 100-image sheet is ~1,300 px across instead of 5,120 (20,480 with the digits' x4: 1.2 GB in memory)."""
    side = max(h, w)
    if side < GRID_TILE[0]:
        k = -(-GRID_TILE[0] // side)
        return h * k, w * k
    if side > GRID_TILE[1]:
        return max(1, round(h * GRID_TILE[1] / side)), max(1, round(w * GRID_TILE[1] / side))
    return h, w


def save_grid(path: str | os.PathLike, images: torch.Tensor, columns: int = 10) -> None:
    """A PNG contact sheet of (up to 100) images, for eyes rather than metrics."""
    images = images[:100]
    n, c, h, w = images.shape
    th, tw = grid_tile(h, w)
    if th < h:  # reduced image by image (box average), so neighbours do not blur into each other
        images = F.interpolate(images.float(), size=(th, tw), mode="area").round().clamp(0, 255).to(torch.uint8)
    rows = (n + columns - 1) // columns
    arr = tile_images(images, columns).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if c == 1 else arr)
    if th > h:  # enlarged: nearest neighbour keeps the pixels sharp
        pil = pil.resize((columns * tw, rows * th), Image.NEAREST)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
