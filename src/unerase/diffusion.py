"""The denoising objective shared by model training, task-vector fine-tuning and textual inversion."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .images_io import load_image_set


def add_noise(scheduler, latents: torch.Tensor, generator: torch.Generator | None = None):
    """(noisy latents, noise, timesteps) for uniformly drawn timesteps."""
    noise = torch.randn(latents.shape, generator=generator, device="cpu").to(latents.device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator).to(latents.device)
    return scheduler.add_noise(latents, noise, t), noise, t


def denoising_loss(unet, scheduler, latents: torch.Tensor, context: torch.Tensor, generator=None) -> torch.Tensor:
    noisy, noise, t = add_noise(scheduler, latents, generator)
    pred = unet(noisy, t, encoder_hidden_states=context).sample
    return F.mse_loss(pred.float(), noise.float())


ENCODE_PIXELS = 1 << 22  # pixels per VAE-encoder batch: 16 images at 512 px (~0.45 GiB each in fp32), 256 digits as before


def encode_batch(images: torch.Tensor, most: int = 256) -> int:
    """Images per encoder batch: at most `most`, and at most ENCODE_PIXELS pixels (SD 1.4's 100 surrogate or
    reference images in one batch held 40-50 GiB of activations)."""
    return max(1, min(most, ENCODE_PIXELS // (images.shape[-2] * images.shape[-1])))


class LatentBank:
    """VAE posteriors of a fixed image set, encoded once. Drawing z = μ + σ·ε each step is the same
    distribution as re-encoding the image each step, without running the encoder again."""

    def __init__(self, vae, images: torch.Tensor, scale: float, batch_size: int = 256):
        batch_size = encode_batch(images, batch_size)
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                dist = vae.encode(images[start : start + batch_size].to(vae.device, vae.dtype)).latent_dist
                means.append(dist.mean)
                stds.append(dist.std)
        self.mean, self.std, self.scale = torch.cat(means), torch.cat(stds), scale

    @classmethod
    def from_image_set(cls, components, path: str, flip: bool = False) -> "LatentBank":
        """The posteriors of an image set on disk (uint8, images_io format) under `components`' VAE. With `flip`, each
        image's mirror too: a uniform draw over both is a uniform image under RandomHorizontalFlip(p=0.5), as in
        diffusers' textual-inversion dataset (CCE's)."""
        images, _, _ = load_image_set(path)
        return cls.from_uint8(components, torch.cat([images, images.flip(-1)]) if flip else images)

    @classmethod
    def from_uint8(cls, components, images: torch.Tensor, batch_size: int = 256) -> "LatentBank":
        """The posteriors of uint8 images (N, C, H, W) under `components`' VAE, encoded `batch_size` at a time."""
        return cls(components.vae, images.float().div(127.5).sub(1).to(components.device), components.vae_scale, batch_size)

    def __len__(self) -> int:
        return len(self.mean)

    def draw(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        index = index.to(self.mean.device)
        eps = torch.randn(self.mean[index].shape, generator=generator).to(self.mean.device)
        return (self.mean[index] + self.std[index] * eps) * self.scale
