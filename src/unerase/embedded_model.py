"""Training the embedded digits model: first its VAE, then UNet and text encoder together."""
from __future__ import annotations

import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline

from . import architecture
from .atomic import atomic_dir
from .checkpoint import Checkpointer, pyrng_from_tensor, pyrng_to_tensor, rng_state, set_rng_state
from .diffusion import LatentBank, denoising_loss
from .digits import DIGIT_NAMES, load_digit_images
from .progress import Progress, log
from .prompts import sample_caption
from .runtime import repeatable_on_cpu
from .text import encode
from .tokenizer import build_clip_tokenizer


def train_vae(out_dir: str, *, steps: int, batch_size: int, lr: float, kl_weight: float, seed: int,
              device: torch.device, checkpoint: str | None = None, checkpoint_every: int = 100) -> None:
    torch.manual_seed(seed)
    images, _ = load_digit_images()
    vae = architecture.make_vae().to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    ckpt = Checkpointer(checkpoint, dict(steps=steps, batch_size=batch_size, lr=lr, kl=kl_weight, seed=seed), checkpoint_every)
    start = 0
    if state := ckpt.load():
        vae.load_state_dict(state["model"]); opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"]); set_rng_state(state["rng"]); start = state["step"]
    progress = Progress("vae", steps, start)
    for step in range(start, steps):
        x = images[torch.randint(0, len(images), (batch_size,), generator=gen)].to(device)
        dist = vae.encode(x).latent_dist
        recon = vae.decode(dist.sample()).sample
        loss = F.mse_loss(recon, x) + kl_weight * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(step, loss.item())
        ckpt.maybe_save(step, steps, lambda: dict(model=vae.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), rng=rng_state()))
    # SD's convention: latents are scaled to unit variance before diffusion.
    vae.eval()
    with torch.no_grad():
        z = vae.encode(images.to(device)).latent_dist.sample()
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    log.info("vae: scaling factor %.4f, reconstruction mse %.4f", vae.config.scaling_factor, loss.item())
    with atomic_dir(out_dir) as tmp:
        vae.save_pretrained(tmp, safe_serialization=True)
    ckpt.clear()


def lr_factor(step: int, warmup: int, steps: int, schedule: str) -> float:
    """Linear warm-up, then constant or cosine decay to zero at `steps`."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    raise ValueError(f"unknown lr schedule '{schedule}'; expected constant or cosine")


def train_text_to_image(vae_dir: str, out_dir: str, *, templates: list[str], steps: int, batch_size: int,
                        lr_unet: float, lr_text: float, warmup: int, grad_clip: float, empty_caption_prob: float,
                        seed: int, lr_schedule: str = "constant", device: torch.device, checkpoint: str | None = None, checkpoint_every: int = 100) -> None:
    """Train UNet + CLIP text encoder on captioned digits; save a folder StableDiffusionPipeline loads."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = AutoencoderKL.from_pretrained(vae_dir, use_safetensors=True).to(device).requires_grad_(False).eval()
    work = Path(out_dir).parent / f".{Path(out_dir).name}.tokenizer"
    tokenizer = build_clip_tokenizer(work)
    text_encoder = architecture.make_text_encoder(len(tokenizer)).to(device)
    unet = architecture.make_unet().to(device)
    scheduler = architecture.make_training_scheduler()
    images, labels = load_digit_images()
    bank = LatentBank(vae, images, vae.config.scaling_factor)

    params = [dict(params=unet.parameters(), lr=lr_unet), dict(params=text_encoder.parameters(), lr=lr_text)]
    opt = torch.optim.AdamW(params, fused=True)  # fused: 1.2x per step on the CPU (bench/)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, steps, lr_schedule))
    ckpt = Checkpointer(checkpoint, dict(steps=steps, batch_size=batch_size, lr=(lr_unet, lr_text), warmup=warmup, schedule=lr_schedule,
                                         clip=grad_clip, empty=empty_caption_prob, templates=templates, seed=seed), checkpoint_every)
    start = 0
    if state := ckpt.load():
        unet.load_state_dict(state["unet"]); text_encoder.load_state_dict(state["text"])
        opt.load_state_dict(state["opt"]); sched.load_state_dict(state["sched"]); gen.set_state(state["gen"])
        rng.setstate(pyrng_from_tensor(state["pyrng"])); set_rng_state(state["rng"]); start = state["step"]
    progress = Progress("text-to-image", steps, start)
    trainable = list(unet.parameters()) + list(text_encoder.parameters())
    with repeatable_on_cpu(device):  # it trains on every core the job has: the same weights on every run
        for step in range(start, steps):
            idx = torch.randint(0, len(bank), (batch_size,), generator=gen)
            captions = [sample_caption(rng, templates, DIGIT_NAMES[int(labels[i])], empty_caption_prob) for i in idx]
            context = encode(tokenizer, text_encoder, captions)
            loss = denoising_loss(unet, scheduler, bank.draw(idx, gen), context, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
            opt.step()
            sched.step()
            progress.update(step, loss.item())
            ckpt.maybe_save(step, steps, lambda: dict(unet=unet.state_dict(), text=text_encoder.state_dict(), opt=opt.state_dict(),
                                                      sched=sched.state_dict(), gen=gen.get_state(), rng=rng_state(),
                                                      pyrng=pyrng_to_tensor(rng.getstate())))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder.eval(), tokenizer=tokenizer, unet=unet.eval(),
                                   scheduler=architecture.make_sampling_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    with atomic_dir(out_dir) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
    ckpt.clear()


# Python's Random state is (version, internal state, gauss_next); checkpoints hold tensors only
# (weights_only loading). Captions use random()/choice(), never gauss(), so gauss_next is None.
