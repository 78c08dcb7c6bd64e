"""IRECE (M-ErasureBench, Inference-time Robustness Enhancement for Concept Erasure): a guard that
stacks on any model. At the intervention step t* the *standard* (un-erased) model's cross-attention
maps for the concept's tokens — read with the concept's text as context on the current latent —
are upsampled to the latent's size, averaged over layers, min-max normalised per image and
thresholded at τ (0.4 in the paper) into a mask M; the masked latent region is replaced by
Gaussian noise:  x*_t = (1 − M)·x_t + M·ξ,  ξ ~ N(0, I).

t* is not given in the paper (early interventions disrupt structure, late ones act too little);
`at` is the fraction of the sampler's steps done before the intervention.
"""
from __future__ import annotations

import torch

from ..attention import CrossAttentionMaps, aggregate, concept_positions, normalised
from ..sampling import initial_latents
from ..text import encode


def concept_mask(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, H, W) maps -> (B, 1, H, W) bool: min-max normalised per image, at least `threshold`."""
    return (normalised(maps) >= threshold)[:, None]


class Irece:
    """The intervention, called by the sampler before each step."""

    def __init__(self, standard_unet, tokenizer, text_encoder, concept: str, threshold: float, at: float, num_steps: int,
                 seeds: list[int], tokens: str | None = None):
        """`concept`: the context text; `tokens`: the words in it whose attention locates the concept
        (all of `concept` when None)."""
        self.unet, self.threshold = standard_unet, threshold
        self.step = min(num_steps - 1, round(at * num_steps))
        self.context = encode(tokenizer, text_encoder, [concept] * len(seeds))
        self.positions = concept_positions(tokenizer, [concept] * len(seeds), tokens or concept)
        self.seeds = seeds
        self.last_mask = None

    @torch.no_grad()
    def __call__(self, step: int, t, latents: torch.Tensor) -> torch.Tensor:
        if step != self.step:
            return latents
        with CrossAttentionMaps(self.unet) as maps:
            self.unet(latents.to(self.unet.dtype), t, encoder_hidden_states=self.context.to(self.unet.dtype))
            layer_maps = maps.token_maps(self.positions)
        mask = concept_mask(aggregate(layer_maps, latents.shape[-1]), self.threshold).to(latents.device)
        # ξ per image from its own seed (offset from the initial noise's), so a batch's split does not matter
        noise = initial_latents(tuple(latents.shape[1:]), [int(s) + 7919 for s in self.seeds], latents.device, latents.dtype)
        self.last_mask = mask.cpu()
        return torch.where(mask, noise, latents)
