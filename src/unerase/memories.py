"""Memories of forgotten concepts (Rusanovsky et al. 2025): the seeds z_T from which an erased model
still regenerates the erased concept's images, how likely those seeds are under the sampler's N(0, I),
and how many distinct seeds regenerate one image.

Follows matanr/Memories_of_Forgotten_Concepts (protocols.md):
- a seed is found by ReNoise inversion (DDIM inversion whose noise estimate at each step is refined
  by re-predicting at the new point and averaging), prompted with the image's own caption, at
  guidance 1; the reconstruction samples it back with the same caption at guidance 1;
- NLL(z) = −Σ log N(z_i; 0, 1) over every latent dimension (a sum, the constant term included);
- the distance of a set of seeds to N(0, I) is the squared 2-Wasserstein distance between Gaussians
  fitted to the NLL values (`(μ₁−μ₂)² + σ₁² + σ₂² − 2σ₁σ₂`, variance ddof 0) — the reference's "EMD";
  the relative distance EMD(E, N) / EMD(R, N) compares the erased concept's set E with a reference
  set R of other images (the paper's Fig. 3; the reference code reports the two EMDs, not the ratio);
- many seeds per image: the VAE latent is optimised to decode to the image from several starting
  latents (the reference starts from other images' latents), and each result is inverted.

Differences, recorded in the probe's output: N(0, I) samples are drawn from the config's seed (the
reference's are unseeded); the VAE latent of the many-seeds search is used directly (the reference
decodes it to 8-bit and re-encodes it); "distinct" seeds are counted, not only reported as distances.
ReNoise follows the reference's renoise_inversion.py (unerase.renoise): below t = 250 iterates 0-4 averaged and every
one pulled towards white noise by its regularisation (`noise_regularisation`: autocorrelation and patch KL, λ 20 /
0.065; null turns it off), above it the last iterate. Not recorded in the output: the image's latent is the posterior
mean, not a sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checkpoint import Checkpointer
from .sampling import ddim_invert
from .seeding import image_seeds


def gaussian_nll(z: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N,): −Σ log N(z_i; 0, 1) over all but the first dimension."""
    flat = z.flatten(1).double()
    return (0.5 * flat.pow(2) + 0.5 * math.log(2 * math.pi)).sum(1)


def fitted_emd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared 2-Wasserstein distance between 1-D Gaussians fitted to `a` and `b` (ddof 0)."""
    m1, m2 = a.double().mean(), b.double().mean()
    v1, v2 = a.double().var(unbiased=False), b.double().var(unbiased=False)
    return float((m1 - m2) ** 2 + v1 + v2 - 2 * torch.sqrt(v1 * v2))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of uint8 images (N, C, H, W) on [0, 1]; inf where they are equal."""
    mse = (x.double() / 255 - y.double() / 255).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def optimise_vae_latents(vae, targets: torch.Tensor, starts: torch.Tensor, steps: int, lr: float,
                         batch_size: int | None = None) -> torch.Tensor:
    """Raw VAE latents (unscaled) that decode to `targets` (uint8, N images), each optimised from its row
    of `starts` (N, C, h, w) by Adam on the MSE of the decoded image on [0, 1] (decoder output
    unclamped, as in the reference). Different starts give different latents for the same image.

    `batch_size` images are decoded at a time (None: all N), each group for all the steps: every latent's
    gradient is its own image's and Adam works element by element, so the groups give the same latents as
    one batch (the loss keeps the whole set's normalisation). At SD 1.4's 512 px a decode keeps 5.5 GiB per
    image for the backward (bench_sd14's count): the reference's 5 x 10 images at once would need 278 GiB."""
    n = len(targets)
    size = n if batch_size is None else max(1, batch_size)
    for p in vae.parameters():
        p.requires_grad_(False)
    found = []
    for first in range(0, n, size):
        target = targets[first:first + size].to(vae.device, torch.float32) / 255
        z = starts[first:first + size].detach().clone().to(vae.device, torch.float32).requires_grad_(True)
        share = len(target) / n  # 1.0 (exact) for one group: the reference's mean over every image
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(vae.decode(z.to(vae.dtype)).sample.float() / 2 + 0.5, target) * share
            loss.backward()
            opt.step()
        found.append(z.detach())
    return torch.cat(found)


def distinct_reconstructing(seeds: torch.Tensor, reconstructs: torch.Tensor, min_distance: float) -> int:
    """How many of one image's seeds (S, ...) reconstruct it (`reconstructs`, (S,) bool) and are pairwise
    at least `min_distance` apart in RMS per dimension (greedy, in order). Two independent N(0, I)
    seeds are √2 apart in these units."""
    kept: list[torch.Tensor] = []
    for seed, ok in zip(seeds.flatten(1).double(), reconstructs.tolist(), strict=True):
        if ok and all(((seed - k).pow(2).mean().sqrt() >= min_distance) for k in kept):
            kept.append(seed)
    return len(kept)


def relative_distance(concept_nll: torch.Tensor, reference_nll: torch.Tensor, normal_nll: torch.Tensor) -> dict:
    """The three EMDs of the reference code and the paper's ratio EMD(E, N) / EMD(R, N): above 1, the
    concept's seeds sit further from the sampler's distribution than other images' seeds."""
    e_n, r_n = fitted_emd(concept_nll, normal_nll), fitted_emd(reference_nll, normal_nll)
    return dict(concept_normal=e_n, reference_normal=r_n, concept_reference=fitted_emd(concept_nll, reference_nll),
                relative_distance=e_n / r_n if r_n > 0 else float("inf"))


def find_seeds(components, latents: torch.Tensor, captions: list[str], num_steps: int, renoise_steps: int,
               regularisation: dict | None = None, seed: int = 0) -> torch.Tensor:
    """Seeds of scaled x_0 latents, each inverted with its own caption at guidance 1 by ReNoise (unerase.renoise), its
    noise regularisation drawing from `seed`."""
    from .text import encode

    context = encode(components.tokenizer, components.text_encoder, captions)
    return ddim_invert(components, latents.to(components.device), context, num_steps, renoise_steps, regularisation=regularisation,
                       seed=seed)


@dataclass
class ProbeInputs:
    """What every model of a concept is probed with: computed once, since erasure leaves the VAE alone."""
    concept_images: torch.Tensor        # E, uint8
    concept_captions: list[str]
    concept_latents: torch.Tensor       # E's scaled VAE posterior means
    reference_latents: torch.Tensor     # R's
    reference_captions: list[str]
    many_targets: torch.Tensor          # the images of the many-seeds search, each repeated seeds_per_image times
    many_latents: torch.Tensor          # their VAE latents fitted from different starts (scaled)
    many_captions: list[str]
    normal_nll: torch.Tensor            # N(0, I) samples' NLL


def prepare(components, *, concept_images: torch.Tensor, concept_captions: list[str], reference_images: torch.Tensor,
            reference_captions: list[str], normal_nll: torch.Tensor, settings: dict, many_latents: torch.Tensor | None = None) -> ProbeInputs:
    """E's and R's latents, and the many-seeds search's VAE latents: the images of E each fitted from
    `seeds_per_image` starts, the encoder latents of R's images (the reference starts from other images' latents).
    `many_latents`: those fitted latents from an earlier run of the job (its checkpoint), not fitted again."""
    from .diffusion import LatentBank

    s = settings
    concept, reference = LatentBank.from_uint8(components, concept_images), LatentBank.from_uint8(components, reference_images)
    m, S = min(s["many_seeds_images"], len(concept_images)), s["seeds_per_image"]
    targets = concept_images[:m].repeat_interleave(S, 0)
    starts = reference.mean[torch.arange(m * S) % len(reference)]
    if many_latents is None:
        many_latents = optimise_vae_latents(components.vae, targets, starts, s["vae_steps"], s["vae_lr"], s.get("vae_batch_size")) \
            * components.vae_scale
    return ProbeInputs(concept_images, list(concept_captions), concept.mean * concept.scale, reference.mean * reference.scale,
                       list(reference_captions), targets, many_latents.to(concept.mean.device),
                       [c for c in concept_captions[:m] for _ in range(S)], normal_nll)


def model_seeds(components, inputs: ProbeInputs, settings: dict, num_steps: int, seed: int = 0) -> dict:
    """A model's seeds (they depend on its weights only): E's, R's and the many-seeds search's, with
    their NLLs and the EMDs to N(0, I)."""
    parts = dict(concept=(inputs.concept_latents, inputs.concept_captions), reference=(inputs.reference_latents, inputs.reference_captions),
                 many=(inputs.many_latents, inputs.many_captions))
    # one inversion of the three sets together: fewer, larger UNet calls
    everything = find_seeds(components, torch.cat([p[0] for p in parts.values()]), [c for p in parts.values() for c in p[1]], num_steps,
                            settings["renoise_steps"], settings.get("noise_regularisation"), seed)
    seeds = dict(zip(parts, everything.split([len(p[0]) for p in parts.values()])))
    nll = dict(concept=gaussian_nll(seeds["concept"]), reference=gaussian_nll(seeds["reference"]), normal=inputs.normal_nll)
    return dict(seeds=seeds, nll=nll, **relative_distance(nll["concept"], nll["reference"], inputs.normal_nll))


def probe_model(components, inputs: ProbeInputs, found: dict, settings: dict, *, num_steps: int, batch_size: int, concept_score,
                guard_options: dict | None = None, seed: int = 0) -> dict:
    """One audited model's memories from its weights' seeds (`found`, model_seeds): the reconstructions'
    PSNR and concept share (`concept_score(uint8 images) -> (N,) bool`, the evaluator) for E and for the
    many-seeds search, sampled at guidance 1 with each image's caption under the model's guards."""
    from .sampling import generate

    s, options = settings, dict(guard_options or {})

    def reconstruct(seeds, captions):
        return generate(components, captions, image_seeds(seed, len(seeds)), 1.0, num_steps, batch_size, latents=seeds, **options)

    back = reconstruct(found["seeds"]["concept"], inputs.concept_captions)
    concept_psnr, recognised = psnr(back, inputs.concept_images), concept_score(back)
    m, S = len(inputs.many_targets) // s["seeds_per_image"], s["seeds_per_image"]
    many = found["seeds"]["many"]
    back = reconstruct(many, inputs.many_captions)
    many_psnr = psnr(back, inputs.many_targets).reshape(m, S)
    many_recognised = concept_score(back).reshape(m, S)
    ok = (many_psnr >= s["psnr_threshold"]) & many_recognised
    flat = many.flatten(1).double().reshape(m, S, -1)
    distinct = [distinct_reconstructing(flat[i], ok[i], s["min_distance"]) for i in range(m)]
    pairwise = [float(torch.pdist(flat[i]).mean() / math.sqrt(flat.shape[-1])) for i in range(m)] if S > 1 else []

    def finite(values: torch.Tensor) -> list[float]:  # JSON has no inf: identical images are capped at 99 dB
        return [round(min(float(v), 99.0), 4) for v in values]

    return dict(
        nll={k: [round(float(v), 3) for v in values] for k, values in found["nll"].items()},
        psnr=finite(concept_psnr), concept_reconstructed=float(recognised.float().mean()),
        concept_normal=found["concept_normal"], reference_normal=found["reference_normal"],
        concept_reference=found["concept_reference"], relative_distance=found["relative_distance"],
        many_seeds=dict(images=m, seeds_per_image=S, psnr=[finite(r) for r in many_psnr], recognised=many_recognised.tolist(),
                        distinct=distinct, mean_distinct=sum(distinct) / max(1, m), pairwise_rms=pairwise),
    )


def probe_models(prepare_inputs, model_of, *, models: list[str], patches: list[str], guards: list[dict], settings: dict, num_steps: int,
                 batch_size: int, concept_score, seed: int, checkpoint: str | None = None, fingerprint: dict | None = None,
                 on_model=None) -> dict:
    """Every audited model's memories (probe_model): `prepare_inputs(many_latents or None) -> ProbeInputs`,
    `model_of(patch, guard_options) -> (components, options)`. Resumable: with `checkpoint`, the fitted VAE
    latents and each finished model's results are saved as they are made (SD 1.4: hours on an A100, over a
    time limit), and a rerun with the same `fingerprint` fits nothing twice and skips the models done."""
    ckpt = Checkpointer(checkpoint, fingerprint or {}, every=1)
    state = ckpt.load() or {}
    inputs = prepare_inputs(state.get("many_latents"))
    results, seeds_by_weights = dict(state.get("results", {})), dict(state.get("seeds", {}))
    stages = len(models) + 1  # the VAE fit, then each model

    def saved():  # the seeds and NLLs are CPU tensors already (ddim_invert returns them there)
        return dict(many_latents=inputs.many_latents.cpu(), results=results, seeds=seeds_by_weights)

    if not state:
        ckpt.maybe_save(0, stages, saved)
    for i, (model, patch, options) in enumerate(zip(models, patches, guards, strict=True)):
        if model in results:
            continue
        components, options = model_of(patch, options)
        if patch not in seeds_by_weights:  # a guard leaves the weights alone: a stack's seeds are its weight method's
            seeds_by_weights[patch] = model_seeds(components, inputs, settings, num_steps, seed)
        results[model] = probe_model(components, inputs, seeds_by_weights[patch], settings, num_steps=num_steps, batch_size=batch_size,
                                     concept_score=concept_score, guard_options=options, seed=seed)
        if on_model:
            on_model(model, results[model])
        ckpt.maybe_save(i + 1, stages, saved)
    ckpt.clear()
    return results
