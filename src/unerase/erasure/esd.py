"""Erased Stable Diffusion (Gandikota et al. 2023): fine-tune the UNet so that, given the concept,
it predicts the noise of the frozen model guided *away* from the concept:
    ε_θ*(x_t, c, t) ← ε(x_t, ∅, t) − η · (ε(x_t, c, t) − ε(x_t, ∅, t)).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from . import training
from ..components import Components
from ..diffusion import LatentBank
from ..sampling import ddim_loop, initial_latents
from ..text import encode
from .job import ErasureJob, ErasureResult

# Each ESD variant's parameter group (unerase.erasure.training.PARAMETER_GROUPS). The reference code
# (rohitgandikota/erasing) matches names the same way; its README passed a name the matcher did not
# know and so trained nothing — here an unknown name is an error and an empty set is an error.
ESD_GROUPS = {"esd-x": "cross-attn", "esd-x-strict": "cross-attn-kv", "esd-u": "non-cross-attn", "esd-all": "full"}
ESD_METHODS = tuple(ESD_GROUPS)


def select_parameters(unet: torch.nn.Module, method: str) -> list[str]:
    if method not in ESD_GROUPS:
        raise ValueError(f"unknown ESD method '{method}'; expected one of {', '.join(ESD_METHODS)}")
    return training.select_parameters(unet, ESD_GROUPS[method])


@torch.no_grad()
def negatively_guided(frozen, x_t, t, uncond, cond, eta: float) -> torch.Tensor:
    """ESD's target: the frozen model's ε(x_t, ∅) − η·(ε(x_t, c) − ε(x_t, ∅)) (Receler's erasers learn it too)."""
    e_u, e_c = frozen(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
    return e_u - eta * (e_c - e_u)


def model_sampled_xt(unet, components: Components, cond, uncond, batch: int, ddim_steps: int, start_guidance: float, gen):
    """ESD's own x_t (Receler's too, its quick_sample_till_t): partially denoise fresh noise with the model being
    trained, stop at a random step."""
    stop = int(torch.randint(1, ddim_steps, (1,), generator=gen))
    seeds = torch.randint(0, 2**31 - 1, (batch,), generator=gen).tolist()
    latents = initial_latents(components.latent_shape, seeds, components.device)
    with torch.no_grad():
        latents, t = ddim_loop(unet, components.scheduler, latents, cond, uncond, start_guidance, ddim_steps, stop_at=stop)
    return latents, t.expand(batch)


def erase_esd(components: Components, concept_bank: LatentBank | None, *, method: str, templates: list[str], concept_text: str,
              iterations: int, lr: float, negative_guidance: float, batch_size: int, xt_source: str, ddim_steps: int,
              start_guidance: float, seed: int, checkpoint: str | None = None, checkpoint_every: int = 100,
              prompts: str = "templates") -> list[str]:
    """Train `components.unet` in place; returns the names of the parameters it changed. `prompts`: "templates" (a
    random template filled with the concept per row) or "name" (the concept's text alone, as train-esd.py's `--prompt`)."""
    if prompts not in ("templates", "name"):
        raise ValueError(f"config key 'erasure.esd.prompts': '{prompts}' is not templates or name")
    unet = components.unet
    frozen = copy.deepcopy(unet).requires_grad_(False).eval()
    names = select_parameters(unet, method)
    params = training.trainable(unet, names)
    scheduler = copy.deepcopy(components.scheduler)
    num_train = scheduler.config.num_train_timesteps
    uncond = encode(components.tokenizer, components.text_encoder, [""] * batch_size)

    def loss_fn(step, gen, rng):
        rows = [concept_text if prompts == "name" else rng.choice(templates).format(concept_text) for _ in range(batch_size)]
        cond = encode(components.tokenizer, components.text_encoder, rows)
        if xt_source == "concept_images":
            idx = torch.randint(0, len(concept_bank), (batch_size,), generator=gen)
            latents = concept_bank.draw(idx, gen)
            noise = torch.randn(latents.shape, generator=gen).to(latents.device)
            t = torch.randint(0, num_train, (batch_size,), generator=gen).to(latents.device)
            x_t = scheduler.add_noise(latents, noise, t)
        elif xt_source == "model":
            x_t, t = model_sampled_xt(unet, components, cond, uncond, batch_size, ddim_steps, start_guidance, gen)
        else:
            raise ValueError(f"unknown esd.xt_source '{xt_source}'")
        target = negatively_guided(frozen, x_t, t, uncond, cond, negative_guidance)
        return F.mse_loss(unet(x_t, t, encoder_hidden_states=cond).sample, target)

    unet.train()
    training.train(f"esd ({method})", dict(unet=unet), params, loss_fn, steps=iterations, lr=lr, seed=seed,
                   settings=dict(method=method, eta=negative_guidance, bs=batch_size, src=xt_source, text=concept_text,
                                 **({"prompts": prompts} if prompts != "templates" else {})),
                   checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    unet.eval().requires_grad_(False)
    return names


def erase(job: ErasureJob) -> ErasureResult:
    """The registry's entry point for every ESD variant (config block `erasure.esd`)."""
    s = job.settings
    bank = job.concept_bank() if s["xt_source"] == "concept_images" else None
    names = erase_esd(job.model, bank, method=job.method, templates=job.templates, concept_text=job.concept_text,
                      iterations=s["iterations"], lr=s["lr"], negative_guidance=s["negative_guidance"], batch_size=s["batch_size"],
                      xt_source=s["xt_source"], ddim_steps=s["ddim_steps"], start_guidance=s["start_guidance"], seed=job.seed,
                      checkpoint=job.checkpoint, prompts=s.get("prompts", "templates"))
    return ErasureResult(names, dict(trained_tensors=len(names)))
