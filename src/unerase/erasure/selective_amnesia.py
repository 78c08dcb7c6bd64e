"""Selective Amnesia (Heng & Soh 2023): continual learning turned around. The concept's prompts are
trained to generate a *surrogate* distribution, while
- elastic weight consolidation keeps every trained weight near the base model in proportion to its
  diagonal Fisher information F (computed once on the base model): λ_F · Σ F_i (θ_i − θ*_i)², and
- generative replay trains the other classes on images the frozen model draws for them.
Loss per step: L_surrogate(concept prompts) + L_replay(other prompts) + λ_F · EWC.

The surrogate for the digits is uniform noise in pixel space, the paper's own choice for MNIST
(its SD configs use images of a neighbouring concept instead, e.g. clothed people for nudity).

Two Fishers (`fisher`): "reference" is the SD code's (sd/ldm/models/diffusion/ddpm_fim.py): per replay sample, the
gradient of the denoising losses summed over all T timesteps (a fresh noise each), squared, averaged over samples;
λ_F = 50 was set against it. "per-timestep" averages squared single-timestep gradients, E_t[g_t²]: 10³–10⁶ times
smaller, so the same λ_F constrains far less (the digits default, as measured in README).
"""
from __future__ import annotations

import torch

from ..checkpoint import Checkpointer
from ..diffusion import LatentBank, denoising_loss
from ..progress import log
from ..seeding import derived
from ..text import encode
from . import training
from .job import ErasureJob, ErasureResult


def diagonal_fisher(unet, scheduler, bank: LatentBank, contexts: torch.Tensor, names: list[str], samples: int,
                    gen: torch.Generator) -> dict[str, torch.Tensor]:
    """E[(∂L/∂θ)²] over `samples` single-image denoising losses (the empirical diagonal Fisher that
    the reference computes on samples of the base model), for the parameters `names`."""
    params = dict(unet.named_parameters())
    fisher = {n: torch.zeros_like(params[n]) for n in names}
    for _ in range(samples):
        i = torch.randint(0, len(bank), (1,), generator=gen)
        loss = denoising_loss(unet, scheduler, bank.draw(i, gen), contexts[i], gen)
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        for n, g in zip(names, grads):
            fisher[n] += g.detach() ** 2 / samples
    return fisher


def summed_timesteps_fisher(unet, scheduler, bank: LatentBank, contexts: torch.Tensor, names: list[str], samples: int,
                            gen: torch.Generator, chunk: int = 64) -> dict[str, torch.Tensor]:
    """ddpm_fim.py's Fisher: for each of `samples` replay images, g = ∂/∂θ Σ_t MSE(ε_θ(x_t, c, t), ε_t) over every
    training timestep t (one noise each), then F += g² / samples. `chunk` rows per UNet call (memory only)."""
    params = dict(unet.named_parameters())
    fisher = {n: torch.zeros_like(params[n]) for n in names}
    steps = torch.arange(scheduler.config.num_train_timesteps)
    for _ in range(samples):
        i = torch.randint(0, len(bank), (1,), generator=gen)
        x0 = bank.draw(i, gen)
        noises = torch.randn((len(steps), *x0.shape[1:]), generator=gen, device="cpu").to(x0.device)
        summed = {n: torch.zeros_like(params[n]) for n in names}
        for start in range(0, len(steps), chunk):
            t = steps[start : start + chunk].to(x0.device)
            noise = noises[start : start + chunk]
            pred = unet(scheduler.add_noise(x0.expand(len(t), *x0.shape[1:]), noise, t), t,
                        encoder_hidden_states=contexts[i].expand(len(t), *contexts.shape[1:])).sample
            loss = (pred.float() - noise.float()).pow(2).mean(dim=tuple(range(1, pred.dim()))).sum()
            for n, g in zip(names, torch.autograd.grad(loss, [params[n] for n in names])):
                summed[n] += g.detach()
        for n in names:
            fisher[n] += summed[n] ** 2 / samples
    return fisher


def surrogate_bank(model, count: int, gen: torch.Generator) -> LatentBank:
    """VAE posteriors of uniform-noise images (the paper's MNIST surrogate)."""
    c, size = model.vae.config.in_channels, model.unet.config.sample_size * 2 ** (len(model.vae.config.block_out_channels) - 1)
    images = torch.rand((count, c, size, size), generator=gen) * 2 - 1
    return LatentBank(model.vae, images.to(model.device), model.vae_scale)


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.selective_amnesia` (method "sa")."""
    s, model = job.settings, job.model
    unet = model.unet
    if s["surrogate"] != "noise":
        raise ValueError(f"erasure.selective_amnesia.surrogate: '{s['surrogate']}' is not one of noise")
    replay_prompts, _, _ = training.other_class_prompts(job, s["replay_images_per_class"])
    n = len(replay_prompts)
    replay = training.drawn_bank(model, replay_prompts, job.seed, job.shared["sampling"])
    replay_context = encode(model.tokenizer, model.text_encoder, replay_prompts).detach()
    gen = torch.Generator().manual_seed(derived(job.seed, 1))  # the Fisher's and the surrogate's draws, apart from training's stream
    surrogate = surrogate_bank(model, s["surrogate_images"], gen)
    names = training.select_parameters(unet, s["parameters"])
    params = training.trainable(unet, names)
    # the reference Fisher is ~1,000 UNet rows per sample (an hour on SD 1.4): kept beside the training checkpoint, so a
    # rerun after a kill (a time limit) resumes training without computing it again; nothing after it draws from `gen`
    cache = Checkpointer(f"{job.checkpoint}.fisher" if job.checkpoint else None, dict(job.fingerprint(), part="fisher"), 1)
    if state := cache.load():
        fisher = {n: state["fisher"][n].to(params[0].device) for n in names}
    elif s.get("fisher", "per-timestep") == "reference":
        fisher = summed_timesteps_fisher(unet, model.scheduler, replay, replay_context, names, s["fisher_samples"], gen,
                                         s.get("fisher_chunk", 64))
        cache.save_now(dict(fisher={n: f.cpu() for n, f in fisher.items()}))
    else:
        fisher = diagonal_fisher(unet, model.scheduler, replay, replay_context, names, s["fisher_samples"], gen)
    anchor = [p.detach().clone() for p in params]
    weights = [fisher[n] for n in names]
    log.info("selective amnesia: %s Fisher over %d replay samples, mean %.3g", s.get("fisher", "per-timestep"), s["fisher_samples"],
             sum(f.sum() for f in weights) / sum(f.numel() for f in weights))
    half = s["batch_size"]

    def loss_fn(step, gen, rng):
        captions = [rng.choice(job.templates).format(job.concept_text) for _ in range(half)]
        forget = denoising_loss(unet, model.scheduler, surrogate.draw(torch.randint(0, len(surrogate), (half,), generator=gen), gen),
                                encode(model.tokenizer, model.text_encoder, captions), gen)
        idx = torch.randint(0, n, (half,), generator=gen)
        remember = denoising_loss(unet, model.scheduler, replay.draw(idx, gen), replay_context[idx], gen)
        ewc = sum((f * (p - a) ** 2).sum() for f, p, a in zip(weights, params, anchor))
        return forget + remember + s["fisher_weight"] * ewc

    unet.train()
    training.train("selective amnesia", dict(unet=unet), params, loss_fn, steps=s["steps"], lr=s["lr"], seed=job.seed,
                   settings=job.fingerprint(), checkpoint=job.checkpoint)
    cache.clear()
    unet.eval().requires_grad_(False)
    return ErasureResult(names, dict(replay_images=n, surrogate=s["surrogate"]))
