"""What the fine-tuning erasure methods share: which UNet parameters they train, images the frozen
model draws for a set of prompts (anchors, replay, surrogates), and one resumable training loop.

The methods (ESD, Ablating Concepts, conditional fine-tune, Selective Amnesia, Forget-Me-Not,
Receler) differ in their loss; each passes `train(...)` a function computing it for one step.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import torch

from ..checkpoint import Checkpointer, rng_state, set_rng_state
from ..components import Components
from ..diffusion import LatentBank
from ..progress import Progress, log
from ..sampling import generate

# Parameter groups by diffusers name. "cross-attn" is ESD-x's and Ablating Concepts' `attn2`
# (its reference `--parameter_group cross-attn` trains the same layers), "cross-attn-kv" ESD-x-strict's
# and UCE's to_k/to_v, "non-cross-attn" ESD-u's and Selective Amnesia's (everything but attn2, the
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


def drawn_bank(model: Components, prompts: list[str], seed: int, num_steps: int, guidance_scale: float,
               batch_size: int = 100) -> LatentBank:
    """VAE posteriors of images the (still unedited) `model` draws for `prompts`, image i from seed
    `seed + i`: the anchor images of Ablating Concepts, the replay set of Selective Amnesia."""
    images = generate(model, prompts, [seed + i for i in range(len(prompts))], guidance_scale, num_steps, batch_size)
    return LatentBank(model.vae, images.float().div(127.5).sub(1).to(model.device), model.vae_scale)


def train(name: str, modules: dict[str, torch.nn.Module], params: list[torch.Tensor], loss_fn: Callable, *, steps: int,
          lr: float, seed: int, settings: dict, checkpoint: str | None = None, checkpoint_every: int = 100,
          grad_clip: float | None = None) -> None:
    """Adam on `params` for `steps` steps of `loss_fn(step, gen, rng) -> loss`; resumable: the state
    of `modules` (those owning `params`), the optimiser and both random streams are checkpointed,
    tagged with `settings` so that a checkpoint of other settings is ignored."""
    gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr, fused=True)
    ckpt = Checkpointer(checkpoint, dict(settings, name=name, steps=steps, lr=lr, seed=seed), checkpoint_every)
    start = 0
    if state := ckpt.load():
        for key, module in modules.items():
            module.load_state_dict(state[key])
        opt.load_state_dict(state["opt"]); gen.set_state(state["gen"]); set_rng_state(state["rng"])
        rng.seed(seed + state["step"]); start = state["step"]
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
                                                  gen=gen.get_state(), rng=rng_state()))
    ckpt.clear()


def trainable(unet: torch.nn.Module, names: list[str]) -> list[torch.Tensor]:
    """Freeze the UNet but for `names`; returns those parameters."""
    params = dict(unet.named_parameters())
    unet.requires_grad_(False)
    return [params[n].requires_grad_(True) for n in names]
