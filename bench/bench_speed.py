"""Performance benchmarks, each reported as a ratio against a baseline measured in the same run.

  python bench/bench_speed.py cpu-training   # embedded model: our training step vs the naive one
  python bench/bench_speed.py sd14           # SD 1.4-size random weights (GPU): our sampler vs
                                             # diffusers' StableDiffusionPipeline, plus ESD and
                                             # textual-inversion step rates

Results are printed as a Markdown table and, with --out, written as JSON.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

import torch

from unerase import architecture
from unerase.diffusion import LatentBank, denoising_loss
from unerase.digits import DIGIT_NAMES, load_digit_images
from unerase.prompts import sample_caption
from unerase.text import tokenize
from unerase.tokenizer import build_clip_tokenizer

TEMPLATES = ["a photo of the digit {}", "the digit {}", "a handwritten {}", "an image of the number {}", "{}"]


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, steps: int, warmup: int) -> float:
    """Seconds per call, after warm-up."""
    for _ in range(warmup):
        fn()
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync()
    return (time.perf_counter() - t0) / steps


def cpu_training(steps: int) -> list[dict]:
    """One text-to-image training step of the embedded model, batch 64, one thread.
    Baseline: re-encode each image with the VAE and each caption with the text encoder every step.
    Ours (embedded_model.train_text_to_image): VAE posteriors cached once (LatentBank), each distinct
    caption encoded once per batch. Same loss, same gradients."""
    torch.set_num_threads(1)
    tok = build_clip_tokenizer(tempfile.mkdtemp())
    vae = architecture.make_vae().requires_grad_(False).eval()
    text, unet = architecture.make_text_encoder(len(tok)), architecture.make_unet()
    sched = architecture.make_training_scheduler()
    images, labels = load_digit_images()
    opt = torch.optim.AdamW(list(unet.parameters()) + list(text.parameters()), lr=1e-4)
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    from unerase.text import encode

    bank = LatentBank(vae, images, 1.0)

    def batch():
        idx = torch.randint(0, len(images), (64,), generator=gen)
        return idx, [sample_caption(rng, TEMPLATES, DIGIT_NAMES[int(labels[i])], 0.1) for i in idx]

    def step(latents, context):
        loss = denoising_loss(unet, sched, latents, context, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def naive():
        idx, captions = batch()
        with torch.no_grad():
            latents = vae.encode(images[idx]).latent_dist.sample()
        step(latents, text(tokenize(tok, captions))[0])

    def ours():
        idx, captions = batch()
        step(bank.draw(idx, gen), encode(tok, text, captions))

    base = timed(naive, steps, 3)
    fast = timed(ours, steps, 3)
    return [dict(workload="embedded text-to-image training step (batch 64, 1 CPU thread)", baseline="VAE + per-caption text encoding each step",
                 baseline_s=base, ours_s=fast, speedup=base / fast)]


def sd14_components(device, dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from unerase.components import Components

    tok = build_clip_tokenizer(tempfile.mkdtemp())
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD 1.x UNet
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512,
                        scaling_factor=0.18215)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    for m in (unet, vae, text):
        m.to(device, dtype).requires_grad_(False).eval()
    return Components(tok, text, vae, unet, architecture.make_sampling_scheduler(), device)


def sd14(batch: int, steps: int, dtype_name: str) -> list[dict]:
    from diffusers import StableDiffusionPipeline

    from unerase.esd import erase_esd
    from unerase.inversion import invert
    from unerase.sampling import generate

    device = torch.device("cuda")
    dtype = getattr(torch, dtype_name)
    c = sd14_components(device, dtype)
    pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, scheduler=c.scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a photo of a church"] * batch
    ours = timed(lambda: generate(c, prompts, list(range(batch)), 7.5, steps, batch), 2, 1)
    theirs = timed(lambda: pipe(prompts, num_inference_steps=steps, guidance_scale=7.5, output_type="pt"), 2, 1)
    rows = [dict(workload=f"SD 1.4-size sampling, batch {batch}, {steps} DDIM steps, CFG, {dtype_name}",
                 baseline="diffusers StableDiffusionPipeline", baseline_s=theirs / batch, ours_s=ours / batch,
                 speedup=theirs / ours, ours_images_per_s=batch / ours)]
    # Training-step rates (float32 weights as the training jobs use them).
    c32 = sd14_components(device, torch.float32)
    images = torch.rand(8, 3, 512, 512, device=device) * 2 - 1
    bank = LatentBank(c32.vae, images, c32.vae_scale)
    n = 20
    t0 = time.perf_counter()
    erase_esd(c32, bank, method="esd-x", templates=["a photo of a {}"], concept_text="church", iterations=n, lr=1e-5,
              negative_guidance=1.0, batch_size=1, xt_source="concept_images", ddim_steps=50, start_guidance=3.0, seed=0)
    _sync()
    esd_rate = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    invert(c32, bank, token="<b>", templates=["a photo of a {}"], num_vectors=1, init_text="object", lr=5e-3, batch_size=4,
           steps=n, seed=0)
    _sync()
    ti_rate = n / (time.perf_counter() - t0)
    rows.append(dict(workload="SD 1.4-size ESD-x step (batch 1, fp32, x_t from concept images)", steps_per_s=esd_rate))
    rows.append(dict(workload="SD 1.4-size textual-inversion step (batch 4, fp32)", steps_per_s=ti_rate))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["cpu-training", "sd14"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = cpu_training(args.steps) if args.suite == "cpu-training" else sd14(args.batch, 50, args.dtype)
    for r in rows:
        print(" | ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.items()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
