"""ReNoise inversion's schedule and noise regularisation (Garibi et al. 2024), as the memories probe's reference
(matanr/Memories_of_Forgotten_Concepts, its renoise/ copy of garibida/ReNoise-Inversion) runs it for SD 1.4: 50 DDIM
steps, 5 re-predictions a step, no noise correction, the RunConfig defaults for the rest.

Per inverse step at timestep t the noise is predicted at the current latent (iterate 0), the step taken, and the
noise re-predicted at the new point (iterates 1..n). Below t = 250 at most 5 re-predictions are
made, iterates 0-4 are averaged and the step is re-taken from the regularised average; every iterate there is
regularised too. Above it, the reference's average range (8, 10) lies beyond 5 re-predictions, so the step is the
last iterate's, unregularised. The regularisation (from pix2pix-zero) moves the predicted noise by gradient steps
towards white noise: `steps` rounds of one step on a patch KL divergence to the prediction for the image noised
forward with fresh Gaussian noise (λ 0.065, gradient clipped to ±100), then `ac_rolls` steps on its autocorrelation at
random shifts over an average-pooled pyramid (λ 20). Its gradients are of sums over each image's own values, so a
batch regularises each image as alone; one set of random shifts serves the whole batch (the reference draws them per
image: the same distribution).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FIRST_STEPS_BELOW_TIMESTEP = 250  # inversion_step's first_step_max_timestep
FIRST_STEPS_AVERAGED = (0, 5)   # iterates averaged below it (RunConfig.average_first_step_range)
LATER_STEPS_AVERAGED = (8, 10)  # above it (average_step_range): beyond 5 re-predictions, so none
FIRST_STEPS_MAX_RENOISE = 5     # max_num_renoise_steps_first_step
PATCH = 4                       # patchify_latents_kl_divergence's patch size

# The reference's RunConfig defaults (config: probes.memories.noise_regularisation).
REFERENCE = dict(lambda_ac=20.0, lambda_kl=0.065, steps=4, ac_rolls=5)


def autocorrelation_loss(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Σ over images, channels and pyramid levels (halved by average pooling down to 8 pixels) of the squared mean
    product of the noise with itself rolled by a random shift, along each spatial axis."""
    loss = x.new_zeros(())
    level = x
    while True:
        for c in range(level.shape[1]):
            shift = int(torch.randint(0, max(1, level.shape[2] // 2), (1,), generator=generator))
            noise = level[:, c]
            loss = loss + (noise * torch.roll(noise, shift, dims=1)).mean((1, 2)).pow(2).sum()
            loss = loss + (noise * torch.roll(noise, shift, dims=2)).mean((1, 2)).pow(2).sum()
        if level.shape[2] <= 8:
            return loss
        level = F.avg_pool2d(level, kernel_size=2)


def patch_kl(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Σ over images, 4 x 4 patches and channels of |KL| between Gaussians fitted to the patch's values of `x` and of
    `reference` (unbiased variances, ε 1e-6), as the reference's latents_kl_divergence."""
    def stats(t):
        patches = t.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH).flatten(-2)  # (N, C, H/4, W/4, 16)
        return patches.mean(-1), patches.var(-1)

    (m0, v0), (m1, v1) = stats(x), stats(reference)
    eps = 1e-6
    return (torch.log((v1 + eps) / (v0 + eps)) + (v0 + (m0 - m1) ** 2) / (v1 + eps) - 1).abs().sum()


def regularise_noise(noise: torch.Tensor, reference: torch.Tensor, settings: dict, generator: torch.Generator) -> torch.Tensor:
    """The reference's noise_regularization: `steps` rounds of a KL step towards `reference`'s patch statistics and
    `ac_rolls` autocorrelation steps."""
    e = noise.detach().float()
    reference = reference.detach().float()
    for _ in range(settings["steps"]):
        with torch.enable_grad():
            if settings["lambda_kl"] > 0:
                var = e.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(patch_kl(var, reference), var)
                e = e - settings["lambda_kl"] * grad.clamp(-100, 100)
            if settings["lambda_ac"] > 0:
                for _ in range(settings["ac_rolls"]):
                    var = e.clone().requires_grad_(True)
                    (grad,) = torch.autograd.grad(autocorrelation_loss(var, generator), var)
                    e = e - settings["lambda_ac"] * grad / settings["ac_rolls"]
    return e.to(noise.dtype)


def inverse_step(predict, step, x: torch.Tensor, t, renoise_steps: int, regularisation: dict | None = None, optimal=None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One ReNoise inverse step from `x` at timestep `t`: `predict(latent) -> noise`, `step(noise) -> next latent`,
    `optimal() -> noise` the prediction for the image noised forward to t (the KL's reference), asked for only where a
    step is regularised. With 0 re-predictions and no regularisation: one plain DDIM inverse step."""
    first = int(t) < FIRST_STEPS_BELOW_TIMESTEP
    n = min(FIRST_STEPS_MAX_RENOISE, renoise_steps) if first else renoise_steps
    low, high = FIRST_STEPS_AVERAGED if first else LATER_STEPS_AVERAGED
    reference = optimal() if regularisation and regularisation["steps"] > 0 and n >= low else None
    latent, average, count = x, None, 0
    for i in range(n + 1):
        noise = predict(latent)
        if low <= i < high:
            count += 1
            average = noise if average is None else average + (noise - average) / count
        if reference is not None and i >= low:
            noise = regularise_noise(noise, reference, regularisation, generator)
        latent = step(noise)
    if average is not None:
        latent = step(regularise_noise(average, reference, regularisation, generator) if reference is not None else average)
    return latent
