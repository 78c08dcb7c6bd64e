"""Conditional fine-tune erasure, the "fine-tune" row of the Task-Vector paper's Table 1: the
concept's prompts are trained towards images of the *other* classes (drawn by the frozen model),
while each other class keeps being trained on its own images. It is the input-dependent baseline
that the paper's unconditional-safety experiment contrasts with the task vector: it changes what the
concept's *prompts* produce, not what the model can draw.
"""
from __future__ import annotations

import torch

from ..diffusion import denoising_loss
from ..text import encode
from . import training
from .job import ErasureJob, ErasureResult


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.conditional_finetune` (method "ft-cond")."""
    s, model = job.settings, job.model
    unet = model.unet
    prompts, owners, templates = training.other_class_prompts(job, s["images_per_class"])
    n = len(prompts)
    bank = training.drawn_bank(model, prompts, job.seed, job.shared["sampling"])

    def loss_fn(step, gen, rng):
        idx = torch.randint(0, n, (s["batch_size"],), generator=gen)
        captions = [templates[i].format(job.concept_text if rng.random() < s["concept_fraction"] else owners[i]) for i in idx.tolist()]
        context = encode(model.tokenizer, model.text_encoder, captions)
        return denoising_loss(unet, model.scheduler, bank.draw(idx, gen), context, gen)

    names = training.finetune_group("conditional fine-tune", job, s["parameters"], loss_fn, steps=s["steps"], lr=s["lr"],
                                    grad_clip=s["grad_clip"])
    return ErasureResult(names, dict(target_images=n, target_classes=sorted(set(owners))))
