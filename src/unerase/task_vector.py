"""Task-vector erasure (Ilharco et al. 2023; Pham et al. 2024): fine-tune the UNet on the concept's
images with EMPTY captions, take τ = θ_ft − θ, and negate it: θ_erased = θ − α·τ. The edit does not
depend on any prompt, which is why it resists input-side attacks such as Concept Inversion."""
from __future__ import annotations

import torch

from .checkpoint import Checkpointer, rng_state, set_rng_state
from .components import Components
from .diffusion import LatentBank, denoising_loss
from .progress import Progress
from .text import encode


def finetune_on_concept(components: Components, bank: LatentBank, *, steps: int, lr: float, batch_size: int,
                        grad_clip: float, seed: int, checkpoint: str | None = None, checkpoint_every: int = 100) -> None:
    """Fine-tune every UNet parameter in place on the concept images, captions empty."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet = components.unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0, fused=True)  # decay would leak into τ
    ckpt = Checkpointer(checkpoint, dict(steps=steps, lr=lr, bs=batch_size, clip=grad_clip, seed=seed), checkpoint_every)
    start = 0
    if state := ckpt.load():
        unet.load_state_dict(state["unet"]); opt.load_state_dict(state["opt"]); gen.set_state(state["gen"])
        set_rng_state(state["rng"]); start = state["step"]
    context = encode(components.tokenizer, components.text_encoder, [""]).expand(batch_size, -1, -1)
    progress = Progress("task-vector fine-tune", steps, start)
    for step in range(start, steps):
        idx = torch.randint(0, len(bank), (batch_size,), generator=gen)
        loss = denoising_loss(unet, components.scheduler, bank.draw(idx, gen), context, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), grad_clip)
        opt.step()
        progress.update(step, loss.item())
        ckpt.maybe_save(step, steps, lambda: dict(unet=unet.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), rng=rng_state()))
    unet.eval().requires_grad_(False)
    ckpt.clear()


def task_vector(base: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """τ = θ_ft − θ over the floating-point tensors both state dicts share."""
    if set(base) != set(finetuned):
        raise ValueError("base and fine-tuned UNets have different parameters")
    return {k: finetuned[k].float() - base[k].float() for k in base if base[k].is_floating_point()}


def negate(base: dict[str, torch.Tensor], tau: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """θ − α·τ, in the base tensors' dtype."""
    return {k: (base[k].float() - alpha * tau[k]).to(base[k].dtype) for k in tau}
