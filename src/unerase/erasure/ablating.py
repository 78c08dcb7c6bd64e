"""Ablating Concepts (Kumari et al. 2023), the model-based variant: fine-tune so that the concept's
prompt predicts, on noisy images of an *anchor* concept, what the model itself predicts for the
anchor prompt:  min ‖ε_θ(x_t, c*, t) − sg(ε_θ(x_t, c_anchor, t))‖²,  x_t from anchor images (the paper's
Eq. 3 and concept-ablation's train.py: the model being trained, under no_grad, not a frozen copy — which also
spares SD 1.4 a second UNet).

The anchor images are drawn by the frozen model from the anchor prompts (the reference generates 200
with SD). On the digits the anchor is the concept's superclass phrasing — the templates with the
concept's name left out ("a photo of the digit"), as "Grumpy Cat" is ablated to "cat".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion import add_noise
from ..text import encode
from . import training
from .job import ErasureJob, ErasureResult


def anchor_prompt(template: str, anchor: str) -> str:
    return " ".join(template.format(anchor).split())  # "a handwritten " -> "a handwritten"


def anchor_of(settings: dict, concept_text: str) -> str:
    """The concept's anchor text: its own in `anchors` (keyed by config name, "garbage_truck"), else `anchor`."""
    return (settings.get("anchors") or {}).get(concept_text.replace(" ", "_"), settings["anchor"])


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.ablating` (method "ac")."""
    model = job.model
    s = dict(job.settings, anchor=anchor_of(job.settings, job.concept_text))
    unet = model.unet
    prompts = [job.templates[i % len(job.templates)] for i in range(s["anchor_images"])]
    bank = training.drawn_bank(model, [anchor_prompt(t, s["anchor"]) for t in prompts], job.seed, job.shared["sampling"])

    def loss_fn(step, gen, rng):
        chosen = [rng.randrange(len(prompts)) for _ in range(s["batch_size"])]  # image i was drawn for template prompts[i]
        idx = torch.tensor(chosen)
        x_t, _, t = add_noise(model.scheduler, bank.draw(idx, gen), gen)
        concept = encode(model.tokenizer, model.text_encoder, [prompts[i].format(job.concept_text) for i in chosen])
        anchor = encode(model.tokenizer, model.text_encoder, [anchor_prompt(prompts[i], s["anchor"]) for i in chosen])
        with torch.no_grad():
            target = unet(x_t, t, encoder_hidden_states=anchor).sample
        return F.mse_loss(unet(x_t, t, encoder_hidden_states=concept).sample, target)

    names = training.finetune_group("ablating concepts", job, s["parameters"], loss_fn, steps=s["steps"], lr=s["lr"])
    return ErasureResult(names, dict(anchor_prompts=sorted({anchor_prompt(t, s["anchor"]) for t in job.templates})))
