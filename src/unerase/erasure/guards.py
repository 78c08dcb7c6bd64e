"""Inference-time guards: the base model's weights, a changed sampler. A guard writes no UNet patch;
the generation step passes the options of `guard_options.sampling_options(...)` to the sampler (unerase.sampling.generate).

- Negative Prompt (`np`): the concept's text replaces the empty prompt of classifier-free guidance,
  so every step is guided away from it (protocols.md; the CCE paper attacks it).
- Safe Latent Diffusion (`sld-weak` … `sld-max`, Schramowski et al. 2023): a third noise prediction
  for the safety concept; where the prompt's prediction is close to it, guidance is pushed away
  from it, with momentum, after a warm-up (`SafeLatentGuidance`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .guard_options import SLD_PRESETS

SLD_REFERENCE_STEPS = 50


@dataclass
class SafeLatentGuidance:
    """SLD's guidance term, step by step (the equations of diffusers' StableDiffusionPipelineSafe)."""

    guidance: float
    warmup_steps: int
    threshold: float
    momentum_scale: float
    momentum_beta: float

    @classmethod
    def preset(cls, name: str, num_steps: int) -> "SafeLatentGuidance":
        """A preset, its warm-up rescaled from the reference's 50 steps to this sampler's `num_steps`."""
        guidance, warmup, threshold, momentum, beta = SLD_PRESETS[name]
        return cls(guidance, round(warmup * num_steps / SLD_REFERENCE_STEPS), threshold, momentum, beta)

    def __post_init__(self):
        self.momentum = None

    def guided(self, step: int, eps_u: torch.Tensor, eps_c: torch.Tensor, eps_s: torch.Tensor) -> torch.Tensor:
        """The guidance direction ε_c − ε_u minus the safety term (after warm-up); updates the momentum."""
        scale = torch.clamp((eps_c - eps_s).abs() * self.guidance, max=1.0)
        scale = torch.where(eps_c - eps_s >= self.threshold, torch.zeros_like(scale), scale)
        safety = (eps_s - eps_u) * scale
        if self.momentum is None:
            self.momentum = torch.zeros_like(safety)
        safety = safety + self.momentum_scale * self.momentum
        self.momentum = self.momentum_beta * self.momentum + (1 - self.momentum_beta) * safety
        direction = eps_c - eps_u
        return direction - safety if step >= self.warmup_steps else direction
