"""Forget-Me-Not (Zhang et al. 2024), attention re-steering: fine-tune the UNet so that the concept's
tokens receive no cross-attention — minimise Σ_layers ‖A_ℓ[:, :, concept tokens]‖² on noisy concept
images captioned with the concept's prompts (the reference `attn.yaml`). The reference's optional
first stage (`ti.yaml`) learns the concept as a textual-inversion token and re-steers that token;
it is not implemented: the concept's own name tokens are re-steered.
"""
from __future__ import annotations

import torch

from ..attention import CrossAttentionMaps, concept_positions
from ..diffusion import add_noise
from ..text import encode
from . import training
from .job import ErasureJob, ErasureResult


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.forget_me_not` (method "fmn")."""
    s, model = job.settings, job.model
    unet = model.unet
    bank = job.concept_bank()

    def loss_fn(step, gen, rng):
        prompts = [rng.choice(job.templates).format(job.concept_text) for _ in range(s["batch_size"])]
        idx = torch.randint(0, len(bank), (s["batch_size"],), generator=gen)
        x_t, _, t = add_noise(model.scheduler, bank.draw(idx, gen), gen)
        positions = concept_positions(model.tokenizer, prompts, job.concept_text)
        with CrossAttentionMaps(unet) as maps:
            unet(x_t, t, encoder_hidden_states=encode(model.tokenizer, model.text_encoder, prompts))
            layers = maps.token_maps(positions)
        return sum(m.pow(2).sum(1).mean() for m in layers) / len(layers)

    names = training.finetune_group("forget-me-not", job, s["parameters"], loss_fn, steps=s["steps"], lr=s["lr"])
    return ErasureResult(names, {})
