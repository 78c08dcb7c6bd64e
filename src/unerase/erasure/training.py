"""What the fine-tuning erasure methods share: which UNet parameters they train, images the frozen
model draws for a set of prompts (anchors, replay, surrogates), and one resumable training loop.

The methods (ESD, Ablating Concepts, conditional fine-tune, Selective Amnesia, Forget-Me-Not,
Receler) differ in their loss; each passes `train(...)` a function computing it for one step.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import torch

from ..checkpoint import Checkpointer, pyrng_from_tensor, pyrng_to_tensor, rng_state, set_rng_state
from ..components import Components
from ..diffusion import LatentBank
from ..progress import Progress, log
from ..sampling import generate
from ..seeding import TRAINING_IMAGES_START, image_seeds

# Parameter groups by diffusers name. "cross-attn" is ESD-x's `attn2`; "cross-attn-kv" ESD-x-strict's, UCE's and
# Ablating Concepts' reference group (concept-ablation's `--parameter_group cross-attn` trains attn2.to_k and .to_v
# only, config/sd14.yaml follows it); "non-cross-attn" ESD-u's and Selective Amnesia's (everything but attn2, the
# output layer and the time embedding, as the reference 'noxattn').
PARAMETER_GROUPS = ("cross-attn", "cross-attn-kv", "non-cross-attn", "attention", "full")


def _is_output_or_time(name: str) -> bool:
    return name.startswith(("conv_out.", "conv_norm_out.", "time_embedding.", "time_proj."))


def select_parameters(unet: torch.nn.Module, group: str) -> list[str]:
    """The names of the UNet parameters in `group`; an unknown group or an empty selection is an error
    (the ESD reference silently trained nothing for a name it did not know)."""
    names = [n for n, _ in unet.named_parameters()]
    if group == "cross-attn":
        chosen = [n for n in names if ".attn2." in n]
    elif group == "cross-attn-kv":
        chosen = [n for n in names if ".attn2.to_k." in n or ".attn2.to_v." in n]
    elif group == "non-cross-attn":
        chosen = [n for n in names if ".attn2." not in n and not _is_output_or_time(n)]
    elif group == "attention":
        chosen = [n for n in names if ".attn1." in n or ".attn2." in n]
    elif group == "full":
        chosen = names
    else:
        raise ValueError(f"unknown parameter group '{group}'; expected one of {', '.join(PARAMETER_GROUPS)}")
    if not chosen:
        raise ValueError(f"parameter group '{group}' selects no parameter of this UNet")
    return chosen


def drawn_bank(model: Components, prompts: list[str], seed: int, sampling: dict) -> LatentBank:
    """VAE posteriors of images the (still unedited) `model` draws for `prompts` with the config's
    `sampling` settings, image i from seed `image_seeds(seed, start=TRAINING_IMAGES_START)[i]` (seeds no evaluated cell
    draws): the anchor images of Ablating Concepts, the replay sets of Selective Amnesia and the conditional fine-tune."""
    batch = sampling["batch_size"]
    seeds = image_seeds(seed, len(prompts), start=TRAINING_IMAGES_START)
    images = generate(model, prompts, seeds, sampling["guidance_scale"], sampling["num_steps"], batch)
    # encode in the sampler's batches on a GPU (SD 1.4 images are large); the CPU keeps LatentBank's default
    return LatentBank.from_uint8(model, images, batch_size=batch) if model.device.type != "cpu" else LatentBank.from_uint8(model, images)


def other_class_prompts(job, per_class: int) -> tuple[list[str], list[str], list[str]]:
    """(prompts, owners, templates): `per_class` prompts for each class but the concept, classes in
    turn, templates advancing each round (the replay / target sets)."""
    others = job.other_classes()
    n = per_class * len(others)
    owners = [others[i % len(others)] for i in range(n)]
    templates = [job.templates[(i // len(others)) % len(job.templates)] for i in range(n)]
    return [t.format(o) for t, o in zip(templates, owners)], owners, templates


def train(name: str, modules: dict[str, torch.nn.Module], params: list[torch.Tensor], loss_fn: Callable, *, steps: int,
          lr: float, seed: int, settings: dict, checkpoint: str | None = None, checkpoint_every: int = 100,
          grad_clip: float | None = None, weight_decay: float = 0.0) -> None:
    """Adam on `params` for `steps` steps of `loss_fn(step, gen, rng) -> loss` (AdamW's decoupled `weight_decay` where it
    is above 0); resumable: the state of `modules` (those owning `params`), the optimiser and the torch, generator and
    Python random streams are checkpointed, tagged with `settings` so that a checkpoint of other settings is ignored."""
    gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True) if weight_decay else torch.optim.Adam(params, lr=lr, fused=True)
    ckpt = Checkpointer(checkpoint, dict(settings, name=name, steps=steps, lr=lr, seed=seed, **({"weight_decay": weight_decay} if weight_decay else {})),
                        checkpoint_every)
    start = 0
    if state := ckpt.load():
        for key, module in modules.items():
            module.load_state_dict(state[key])
        opt.load_state_dict(state["opt"]); gen.set_state(state["gen"]); set_rng_state(state["rng"])
        rng.setstate(pyrng_from_tensor(state["pyrng"])); start = state["step"]
    log.info("%s: trains %d tensors (%d values) for %d steps", name, len(params), sum(p.numel() for p in params), steps)
    progress = Progress(name, steps, start)
    for step in range(start, steps):
        loss = loss_fn(step, gen, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        progress.update(step, loss.item())
        ckpt.maybe_save(step, steps, lambda: dict(**{k: m.state_dict() for k, m in modules.items()}, opt=opt.state_dict(),
                                                  gen=gen.get_state(), rng=rng_state(), pyrng=pyrng_to_tensor(rng.getstate())))
    ckpt.clear()


def finetune_group(name: str, job, group: str, loss_fn: Callable, *, steps: int, lr: float, grad_clip: float | None = None,
                   weight_decay: float = 0.0) -> list[str]:
    """Train the UNet parameters of `group` (all else frozen) with `train`, tagged with the job's
    fingerprint; returns their names. The common case of the fine-tuning methods."""
    unet = job.model.unet
    names = select_parameters(unet, group)
    params = trainable(unet, names)
    unet.train()
    train(name, dict(unet=unet), params, loss_fn, steps=steps, lr=lr, seed=job.seed, settings=job.fingerprint(),
          checkpoint=job.checkpoint, grad_clip=grad_clip, weight_decay=weight_decay)
    unet.eval().requires_grad_(False)
    return names


def trainable(unet: torch.nn.Module, names: list[str]) -> list[torch.Tensor]:
    """Freeze the UNet but for `names`; returns those parameters."""
    params = dict(unet.named_parameters())
    unet.requires_grad_(False)
    return [params[n].requires_grad_(True) for n in names]
