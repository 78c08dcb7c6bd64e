"""DDIM latent inversion (M-ErasureBench, "inverted latents" modality): concept images are encoded by
the VAE and run *backwards* through the deterministic DDIM sampler to the seed x_T that regenerates
them; the generation step then samples from these seeds instead of random ones, and the evaluator's
share of regenerations showing the concept is the Concept Reproduction Rate (CRR).

White-box (`latent-inversion`): inverted on the audited model's own weights, which is what an editing
pipeline built on the erased model does; black-box (`latent-transfer`): inverted on the base model
and sampled on the erased one. Both are regenerated with the same prompt as the inversion (the null
prompt by default: the paper's hardest setting, > 92 % CRR white-box on SD 1.4), under the model's
guards (IRECE, SLD, Negative Prompt), at the sampler's own number of steps so that the inverse and
forward schedules are the same timesteps.

The inverse scheduler is diffusers' `DDIMInverseScheduler`, configured from the model's sampling
scheduler; z_0 is the VAE posterior mean. The guidance of the inversion is 1 (the conditional
prediction alone), as in DDIM inversion for editing: with the null prompt, classifier-free guidance
at any scale predicts the same noise on an unguarded model, so the regeneration retraces the path.
"""
from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from ..diffusion import LatentBank
from ..images_io import load_image_set
from ..sampling import ddim_invert
from ..text import encode
from .job import AttackJob


def concept_latents(components, images_path: str, count: int) -> torch.Tensor:
    """The VAE posterior means of the first `count` concept images, scaled as the UNet sees them."""
    images, _, _ = load_image_set(images_path)
    if len(images) < count:
        raise ValueError(f"attacks.latent_inversion.num_images: {count} asked, {images_path} has {len(images)} images "
                         f"(concept_images.count)")
    bank = LatentBank.from_uint8(components, images[:count])
    return bank.mean * bank.scale


def regeneration_prompt(settings: dict, concept_text: str) -> str:
    """The prompt the seeds are inverted with and regenerated with ("" = the null prompt)."""
    return settings["prompt"].format(concept_text)


def read_inverted_latents(path: str) -> tuple[torch.Tensor, str]:
    """(seeds (N, C, h, w), the prompt they were inverted with) of a latent-inversion artefact."""
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        if "latents" not in f.keys() or "prompt" not in metadata:
            raise ValueError(f"{path}: not a latent-inversion file (no 'latents' tensor or 'prompt' metadata); delete it to re-run the attack")
        return f.get_tensor("latents"), metadata["prompt"]


def run(job: AttackJob) -> dict:
    s = job.settings
    num_steps = job.sampling["num_steps"]
    prompt = regeneration_prompt(s, job.concept_text)
    z0 = concept_latents(job.model, job.inputs["concept_images"], s["num_images"])
    context = encode(job.model.tokenizer, job.model.text_encoder, [prompt])
    seeds = ddim_invert(job.model, z0.to(job.model.device), context, num_steps)
    with atomic_path(job.artefact) as tmp:
        save_file({"latents": seeds.contiguous()}, str(tmp), metadata=dict(prompt=prompt, num_steps=str(num_steps)))
    flat = seeds.flatten(1)
    return dict(prompt=prompt, num_images=len(seeds), num_steps=num_steps, latent_mean=float(flat.mean()),
                latent_std=float(flat.std()))
