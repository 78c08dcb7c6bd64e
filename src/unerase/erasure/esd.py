"""Erased Stable Diffusion (Gandikota et al. 2023): fine-tune the UNet so that, given the concept,
it predicts the noise of the frozen model guided *away* from the concept:
    ε_θ*(x_t, c, t) ← ε(x_t, ∅, t) − η · (ε(x_t, c, t) − ε(x_t, ∅, t)).
"""
from __future__ import annotations

import copy
import random

import torch
import torch.nn.functional as F

from ..checkpoint import Checkpointer, rng_state, set_rng_state
from ..components import Components
from ..diffusion import LatentBank
from ..progress import Progress, log
from ..sampling import ddim_loop, initial_latents
from ..text import encode
from .job import ErasureJob, ErasureResult

# Which UNet parameters each ESD variant trains, by diffusers parameter name. The reference code
# (rohitgandikota/erasing) matches names the same way; its README passed a name the matcher did not
# know and so trained nothing — here an unknown name is an error and an empty set is an error.
ESD_METHODS = ("esd-x", "esd-u", "esd-all", "esd-x-strict")


def _is_output_or_time(name: str) -> bool:
    # ESD-u leaves the output layer and the time embedding alone, as the reference 'noxattn' does.
    return name.startswith(("conv_out.", "conv_norm_out.")) or name.startswith(("time_embedding.", "time_proj."))


def select_parameters(unet: torch.nn.Module, method: str) -> list[str]:
    names = [n for n, _ in unet.named_parameters()]
    if method == "esd-x":
        chosen = [n for n in names if ".attn2." in n]
    elif method == "esd-x-strict":
        chosen = [n for n in names if ".attn2.to_k." in n or ".attn2.to_v." in n]
    elif method == "esd-u":
        chosen = [n for n in names if ".attn2." not in n and not _is_output_or_time(n)]
    elif method == "esd-all":
        chosen = names
    else:
        raise ValueError(f"unknown ESD method '{method}'; expected one of {', '.join(ESD_METHODS)}")
    if not chosen:
        raise ValueError(f"ESD method '{method}' selects no parameter of this UNet")
    return chosen


def _model_sampled_xt(unet, components: Components, cond, uncond, batch: int, ddim_steps: int, start_guidance: float, gen):
    """ESD's own x_t: partially denoise fresh noise with the model being trained, stop at a random step."""
    stop = int(torch.randint(1, ddim_steps, (1,), generator=gen))
    seeds = torch.randint(0, 2**31 - 1, (batch,), generator=gen).tolist()
    latents = initial_latents(components.latent_shape, seeds, components.device)
    with torch.no_grad():
        latents, t = ddim_loop(unet, components.scheduler, latents, cond, uncond, start_guidance, ddim_steps, stop_at=stop)
    return latents, t.expand(batch)


def erase_esd(components: Components, concept_bank: LatentBank | None, *, method: str, templates: list[str], concept_text: str,
              iterations: int, lr: float, negative_guidance: float, batch_size: int, xt_source: str, ddim_steps: int,
              start_guidance: float, seed: int, checkpoint: str | None = None, checkpoint_every: int = 100) -> list[str]:
    """Train `components.unet` in place; returns the names of the parameters it changed."""
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet = components.unet
    frozen = copy.deepcopy(unet).requires_grad_(False).eval()
    names = select_parameters(unet, method)
    params = dict(unet.named_parameters())
    unet.requires_grad_(False)
    trainable = [params[n].requires_grad_(True) for n in names]
    log.info("esd: %s trains %d tensors (%d values)", method, len(trainable), sum(p.numel() for p in trainable))
    opt = torch.optim.Adam(trainable, lr=lr, fused=True)
    scheduler = copy.deepcopy(components.scheduler)
    num_train = scheduler.config.num_train_timesteps
    ckpt = Checkpointer(checkpoint, dict(method=method, it=iterations, lr=lr, eta=negative_guidance, bs=batch_size,
                                         src=xt_source, seed=seed, text=concept_text), checkpoint_every)
    start = 0
    if state := ckpt.load():
        unet.load_state_dict(state["unet"]); opt.load_state_dict(state["opt"]); gen.set_state(state["gen"])
        set_rng_state(state["rng"]); rng.seed(seed + state["step"]); start = state["step"]
    uncond = encode(components.tokenizer, components.text_encoder, [""] * batch_size)
    progress = Progress(f"esd ({method})", iterations, start)
    unet.train()
    for step in range(start, iterations):
        prompts = [rng.choice(templates).format(concept_text) for _ in range(batch_size)]
        cond = encode(components.tokenizer, components.text_encoder, prompts)
        if xt_source == "concept_images":
            idx = torch.randint(0, len(concept_bank), (batch_size,), generator=gen)
            latents = concept_bank.draw(idx, gen)
            noise = torch.randn(latents.shape, generator=gen).to(latents.device)
            t = torch.randint(0, num_train, (batch_size,), generator=gen).to(latents.device)
            x_t = scheduler.add_noise(latents, noise, t)
        elif xt_source == "model":
            x_t, t = _model_sampled_xt(unet, components, cond, uncond, batch_size, ddim_steps, start_guidance, gen)
        else:
            raise ValueError(f"unknown esd.xt_source '{xt_source}'")
        with torch.no_grad():
            e_u, e_c = frozen(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
            target = e_u - negative_guidance * (e_c - e_u)
        loss = F.mse_loss(unet(x_t, t, encoder_hidden_states=cond).sample, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(step, loss.item())
        ckpt.maybe_save(step, iterations, lambda: dict(unet=unet.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), rng=rng_state()))
    unet.eval().requires_grad_(False)
    ckpt.clear()
    return names


def erase(job: ErasureJob) -> ErasureResult:
    """The registry's entry point for every ESD variant (config block `erasure.esd`)."""
    s = job.settings
    bank = job.concept_bank() if s["xt_source"] == "concept_images" else None
    names = erase_esd(job.model, bank, method=job.method, templates=job.templates, concept_text=job.concept_text,
                      iterations=s["iterations"], lr=s["lr"], negative_guidance=s["negative_guidance"], batch_size=s["batch_size"],
                      xt_source=s["xt_source"], ddim_steps=s["ddim_steps"], start_guidance=s["start_guidance"], seed=job.seed,
                      checkpoint=job.checkpoint)
    return ErasureResult(names, dict(trained_tensors=len(names)))
