"""Batched DDIM sampling with classifier-free guidance, one fixed seed per image, and its inverse."""
from __future__ import annotations

import copy

import torch
from diffusers import DDIMInverseScheduler

from .components import Components
from .text import encode


def initial_latents(shape: tuple[int, ...], seeds: list[int], device, dtype=torch.float32) -> torch.Tensor:
    """One latent per seed, drawn on the CPU so a seed gives the same image on any device."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(device, dtype)


def ddim_loop(unet, scheduler, latents, cond, uncond, guidance_scale: float, num_steps: int, stop_at: int | None = None,
              safety=None, safety_context=None, intervention=None):
    """Run DDIM from `latents`; `stop_at` returns the intermediate x_t after that many steps (ESD uses it).
    `safety` (a guards.SafeLatentGuidance) adds SLD's term from a third prediction on `safety_context`;
    `intervention(step, t, latents) -> latents` edits the latent before a step (IRECE)."""
    scheduler = copy.deepcopy(scheduler)
    scheduler.set_timesteps(num_steps, device=latents.device)
    # At guidance 1 the guided noise is the conditional prediction: skip the unconditional half, as diffusers'
    # pipelines do (guidance_scale > 1 turns it on) — the memories probe's reconstructions at SD size, ~1/7 of its job.
    # SLD's term reads the unconditional prediction at any scale.
    conditional_only = guidance_scale == 1 and safety is None
    parts = [cond] if conditional_only else [uncond, cond] + ([safety_context] if safety is not None else [])
    context = torch.cat(parts)
    for i, t in enumerate(scheduler.timesteps):
        if stop_at is not None and i == stop_at:
            return latents, t
        if intervention is not None:
            latents = intervention(i, t, latents)
        eps = unet(torch.cat([latents] * len(parts)), t, encoder_hidden_states=context).sample.chunk(len(parts))
        if conditional_only:
            noise = eps[0]
        else:
            noise = eps[0] + guidance_scale * (safety.guided(i, *eps) if safety is not None else eps[1] - eps[0])
        latents = scheduler.step(noise, t, latents).prev_sample
    return latents, None


@torch.no_grad()
def ddim_invert(components: Components, latents: torch.Tensor, context: torch.Tensor, num_steps: int, renoise_steps: int = 0,
                batch_size: int = 256, regularisation: dict | None = None, seed: int = 0) -> torch.Tensor:
    """The inverse of `ddim_loop` at guidance 1: scaled x_0 latents (N, C, h, w) -> seeds x_T by
    `num_steps` inverse DDIM steps (diffusers' DDIMInverseScheduler from the model's scheduler config)
    with the noise predicted for `context` (1 row for all, or N). With `renoise_steps` > 0 each step is
    ReNoise's (Garibi et al. 2024; unerase.renoise): the noise re-predicted at the new point, towards the fixed point
    of the step the forward sampler takes back, averaged as the reference does; `regularisation` (unerase.renoise's
    settings, None: off) pulls the predicted noise towards white noise, with the forward noise and the random shifts
    drawn from `seed`."""
    from .renoise import inverse_step

    inverse = DDIMInverseScheduler.from_config(components.scheduler.config)
    inverse.set_timesteps(num_steps, device=latents.device)
    unet = components.unet
    generator = torch.Generator().manual_seed(int(seed)) if regularisation else None
    out = []
    for start in range(0, len(latents), batch_size):
        x = x0 = latents[start : start + batch_size].to(unet.dtype)
        ctx = (context.expand(len(x), -1, -1) if len(context) == 1 else context[start : start + batch_size]).to(x.dtype)
        forward_noise = torch.randn(x.shape, generator=generator).to(x) if regularisation else None
        for t in inverse.timesteps:
            x = inverse_step(lambda latent: unet(latent, t, encoder_hidden_states=ctx).sample,
                             lambda noise: inverse.step(noise, t, x).prev_sample, x, t, renoise_steps, regularisation,
                             lambda: unet(components.scheduler.add_noise(x0, forward_noise, t), t, encoder_hidden_states=ctx).sample,
                             generator)
        if regularisation and not torch.isfinite(x).all():  # a silent NaN would turn every NLL and EMD of the probe into nan
            raise ValueError(f"ReNoise's noise regularisation {regularisation} diverged (non-finite seeds) on this model; set "
                             "probes.memories.noise_regularisation to null or smaller lambdas")
        out.append(x.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode_to_uint8(components: Components, latents: torch.Tensor) -> torch.Tensor:
    images = components.vae.decode((latents / components.vae_scale).to(components.vae.dtype)).sample.float()
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


@torch.no_grad()
def generate(components: Components, prompts: list[str], seeds: list[int], guidance_scale: float,
             num_steps: int, batch_size: int, on_batch=None, negative_prompt: str = "", safety: dict | None = None,
             irece: dict | None = None, standard_unet=None, latents: torch.Tensor | None = None) -> torch.Tensor:
    """Images (N, C, H, W) uint8 for `prompts`, image i drawn from seed `seeds[i]`, or from the given
    initial `latents[i]` (e.g. DDIM-inverted seeds; `seeds` then only seed IRECE's noise). The guards
    (unerase.erasure): `negative_prompt` replaces the empty prompt of classifier-free guidance;
    `safety` ({"preset", "concept"}) applies Safe Latent Diffusion; `irece` ({"concept", "threshold",
    "at"}) applies IRECE with the un-erased `standard_unet` (this model's UNet when None)."""
    out = []
    for start in range(0, len(prompts), batch_size):
        p = prompts[start : start + batch_size]
        cond = encode(components.tokenizer, components.text_encoder, p)
        uncond = encode(components.tokenizer, components.text_encoder, [negative_prompt] * len(p))
        if latents is None:
            x = initial_latents(components.latent_shape, seeds[start : start + batch_size], components.device, components.unet.dtype)
        else:
            x = latents[start : start + batch_size].to(components.device, components.unet.dtype)
        sld = sld_context = None
        if safety is not None:  # a fresh momentum per batch: every image is guided as if sampled alone
            from .erasure.guards import SafeLatentGuidance

            sld = SafeLatentGuidance.preset(safety["preset"], num_steps)
            sld_context = encode(components.tokenizer, components.text_encoder, [safety["concept"]] * len(p))
        intervention = None
        if irece is not None:
            from .erasure.irece import Irece

            intervention = Irece(components.unet if standard_unet is None else standard_unet, components.tokenizer, components.text_encoder, num_steps=num_steps,
                                 seeds=seeds[start : start + batch_size], **irece)
        x, _ = ddim_loop(components.unet, components.scheduler, x, cond, uncond, guidance_scale, num_steps,
                         safety=sld, safety_context=sld_context, intervention=intervention)
        out.append(decode_to_uint8(components, x))
        if on_batch:
            on_batch(start + len(p), len(prompts))
    return torch.cat(out)
