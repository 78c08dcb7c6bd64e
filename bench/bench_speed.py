"""Performance benchmarks, each reported as a ratio against a baseline measured in the same run.

  python bench/bench_speed.py cpu-training   # embedded model: our training step vs the naive one
  python bench/bench_speed.py cpu-steps      # embedded model, one thread: each per-step lever of
                                             # issue #5 against the code it replaced, same run
  python bench/bench_speed.py cpu-levers     # embedded model, one thread: levers issue #5 lists that
                                             # were measured and not taken (torch.compile, attention
                                             # kernels, a shorter text context), each against today's code
  python bench/bench_speed.py diverse-inversion [--n 10]
                                             # n embeddings in one batch vs n sequential inversions
                                             # (embedded model on the CPU)

SD 1.4 size on a GPU: bench/bench_sd14.py.

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


def cpu_steps(steps: int) -> list[dict]:
    """Issue #5's per-step levers on the embedded model (random weights time the same), one thread,
    each against what it replaced, measured in the same run:
    - Concept Inversion: only the K new vectors are trainable (PlaceholderEmbedding), against the
      whole 49,408-row token table trainable with its other rows restored after each step;
    - the text-to-image training step with the fused CPU AdamW against PyTorch's default (for-loop),
      and with two threads against one (the lever for a job that runs alone in the DAG);
    - sampling one image (CFG, batch 100) with 10 DDIM steps against the default 25;
    - a job's start-up: a fresh Python importing a step module (torch, diffusers, transformers)."""
    import subprocess
    import sys

    from unerase.components import Components
    from unerase.inversion import PlaceholderEmbedding, add_tokens, init_vectors, placeholder_tokens
    from unerase.sampling import generate
    from unerase.text import encode

    torch.set_num_threads(1)
    tok = build_clip_tokenizer(tempfile.mkdtemp())
    torch.manual_seed(0)
    c = Components(tok, architecture.make_text_encoder(len(tok)), architecture.make_vae(), architecture.make_unet(),
                   architecture.make_sampling_scheduler(), torch.device("cpu"))
    for m in (c.text_encoder, c.vae, c.unet):
        m.requires_grad_(False).eval()
    sched = architecture.make_training_scheduler()
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(32, 4, 8, 8)
    placeholder = add_tokens(c, "<b>", init_vectors(c, "digit", 4))
    ids = torch.tensor(tok.convert_tokens_to_ids(placeholder_tokens("<b>", 4)))
    captions = [f"a photo of the digit {placeholder}"] * 16 + [placeholder] * 16
    table = c.text_encoder.get_input_embeddings()
    original = table.weight.detach().clone()
    frozen_rows = torch.ones(len(original), dtype=torch.bool)
    frozen_rows[ids] = False
    table.weight.requires_grad_(True)
    full_opt = torch.optim.AdamW([table.weight], lr=1e-2, weight_decay=0.0)

    def inversion_step(opt, restore_rows: bool):
        loss = denoising_loss(c.unet, sched, latents, encode(tok, c.text_encoder, captions), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if restore_rows:
            with torch.no_grad():
                table.weight[frozen_rows] = original[frozen_rows]

    base = timed(lambda: inversion_step(full_opt, True), steps, 3)
    table.weight.requires_grad_(False)
    emb = PlaceholderEmbedding(table, ids, original[ids].clone())
    c.text_encoder.set_input_embeddings(emb)
    small_opt = torch.optim.AdamW([emb.vectors], lr=1e-2, weight_decay=0.0)
    ours = timed(lambda: inversion_step(small_opt, False), steps, 3)
    c.text_encoder.set_input_embeddings(table)
    rows = [dict(workload="Concept-Inversion step (batch 32, 4 vectors)", baseline="whole token table trainable, other rows restored",
                 baseline_s=base, ours_s=ours, speedup=base / ours)]

    unet, text = architecture.make_unet(), architecture.make_text_encoder(len(tok))
    params = list(unet.parameters()) + list(text.parameters())
    caps = [f"a photo of the digit {DIGIT_NAMES[i % 10]}" for i in range(64)]
    x64 = torch.randn(64, 4, 8, 8)

    def train_step(opt):
        loss = denoising_loss(unet, sched, x64, encode(tok, text, caps), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    loop_opt, fused_opt = torch.optim.AdamW(params, lr=1e-4, foreach=False), torch.optim.AdamW(params, lr=1e-4, fused=True)
    base = timed(lambda: train_step(loop_opt), steps, 3)
    ours = timed(lambda: train_step(fused_opt), steps, 3)
    rows.append(dict(workload="text-to-image training step (batch 64)", baseline="AdamW for-loop (PyTorch's CPU default)",
                     baseline_s=base, ours_s=ours, speedup=base / ours))
    torch.set_num_threads(2)
    two = timed(lambda: train_step(fused_opt), steps, 3)
    torch.set_num_threads(1)
    rows.append(dict(workload="text-to-image training step (batch 64), 2 threads", baseline="1 thread", baseline_s=ours,
                     ours_s=two, speedup=ours / two))

    prompts = [f"a photo of the digit {DIGIT_NAMES[i % 10]}" for i in range(100)]
    new_steps = 10  # issue #5's candidate; the default keeps 25 (README, "What was tried")
    base = timed(lambda: generate(c, prompts, list(range(100)), 3.0, 25, 100), 2, 1) / 100
    ours = timed(lambda: generate(c, prompts, list(range(100)), 3.0, new_steps, 100), 2, 1) / 100
    rows.append(dict(workload=f"sampling one image (CFG, batch 100), {new_steps} DDIM steps", baseline="25 DDIM steps",
                     baseline_s=base, ours_s=ours, speedup=base / ours))

    t0 = time.perf_counter()
    for _ in range(3):
        subprocess.run([sys.executable, "-c", "import unerase.steps.generate"], check=True, capture_output=True)
    rows.append(dict(workload="job start-up: Python + imports of a step module", seconds=(time.perf_counter() - t0) / 3))
    return rows


def diverse_inversion(n: int, per_embedding: int, steps: int) -> list[dict]:
    """Diverse Inversion's n embeddings optimised in one batch (n x `per_embedding` rows per step)
    against the same n embeddings optimised one after another (`per_embedding` rows per step each),
    the same steps each: embedding-steps/s and their ratio. Random weights (rates do not depend on them)."""
    from unerase.attacks.diverse_inversion import diverse_invert
    from unerase.components import Components

    device = torch.device("cpu")
    torch.set_num_threads(1)
    tok_dir = tempfile.mkdtemp()

    def make():
        tok = build_clip_tokenizer(tok_dir)
        parts = [architecture.make_text_encoder(len(tok)), architecture.make_vae(), architecture.make_unet()]
        for m in parts:
            m.requires_grad_(False).eval()
        return Components(tok, *parts, architecture.make_sampling_scheduler(), device)
    images = torch.rand(16, 1, 16, 16) * 2 - 1
    kw = dict(token="<d>", concept_text="zero", templates=["a photo of the digit {}"], total=n, bands=[[-0.2, 0.2], [0.2, 0.6]],
              pairwise_max=1.0, diversity_weight=0.0, lr=1e-2, batch_per_embedding=per_embedding, steps=steps, seed=0)
    c = make()
    bank = LatentBank(c.vae, images, c.vae_scale)
    diverse_invert(c, bank, indices=list(range(n)), **dict(kw, steps=2))  # warm-up
    _sync()
    t0 = time.perf_counter()
    diverse_invert(make(), bank, indices=list(range(n)), **kw)
    _sync()
    together = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(n):
        diverse_invert(make(), bank, indices=[k], **kw)
    _sync()
    sequential = time.perf_counter() - t0
    return [dict(workload=f"Diverse Inversion, {n} embeddings x {per_embedding} rows, {steps} steps (embedded, cpu)",
                 baseline="n sequential inversions", baseline_embedding_steps_per_s=n * steps / sequential,
                 ours_embedding_steps_per_s=n * steps / together, speedup=sequential / together)]


def cpu_levers(steps: int) -> list[dict]:
    """Levers issue #5 names that the default does not take, each against today's code in the same run
    (embedded UNet, random weights, one thread; a generation batch is 100 images under classifier-free
    guidance = UNet batch 200, a training step is batch 64 with its backward):
    - torch.compile (inductor) of the UNet: seconds per call against eager, and what compiling costs a
      job (cold: an empty inductor cache; warm: compiled again after torch._dynamo.reset() with the
      on-disk cache filled, what every later job of a run would pay);
    - the attention kernel: PyTorch's SDPA math backend and diffusers' pre-2.0 AttnProcessor against
      the default (SDPA's CPU flash kernel);
    - the text context: cross-attention over 16 tokens instead of SD's 77 (the UNet's share only)."""
    import contextlib

    from torch._inductor.utils import fresh_cache
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = architecture.make_unet().eval().requires_grad_(False)
    t = torch.tensor(500)
    x200, x64 = torch.randn(200, 4, 8, 8), torch.randn(64, 4, 8, 8)
    ctx = {n: torch.randn(200, n, architecture.TEXT_WIDTH) for n in (77, 16)}

    def forward(model, n=77):
        with torch.no_grad():
            return model(x200, t, encoder_hidden_states=ctx[n]).sample

    def train_step(context=contextlib.nullcontext):
        with context():
            unet.zero_grad(set_to_none=True)
            unet.requires_grad_(True)
            unet(x64, torch.randint(0, 1000, (64,)), encoder_hidden_states=ctx[77][:64]).sample.pow(2).mean().backward()
            unet.requires_grad_(False)

    eager = timed(lambda: forward(unet), steps, 3)
    rows = []
    with fresh_cache():  # an empty on-disk cache: the first job of a run
        compiled = torch.compile(unet)
        t0 = time.perf_counter()
        forward(compiled)
        cold = time.perf_counter() - t0
        torch._dynamo.reset()  # the cache now holds this graph: what every later job would pay
        compiled = torch.compile(unet)
        t0 = time.perf_counter()
        y = forward(compiled)
        warm = time.perf_counter() - t0
        ours = timed(lambda: forward(compiled), steps, 3)
    rows.append(dict(workload="UNet forward, batch 200 (sampling 100 images with CFG)", baseline="eager", baseline_s=eager,
                     ours_s=ours, speedup=eager / ours, lever="torch.compile (inductor)", compile_cold_s=cold, compile_warm_s=warm,
                     break_even_calls=warm / max(eager - ours, 1e-9), max_abs_diff=float((y - forward(unet)).abs().max())))
    base_train = timed(train_step, steps, 3)
    for label, context in (("SDPA math backend", lambda: sdpa_kernel(SDPBackend.MATH)),):
        with context():
            fwd = timed(lambda: forward(unet), steps, 3)
        rows.append(dict(workload="UNet forward, batch 200", baseline="SDPA default (CPU flash)", baseline_s=eager, ours_s=fwd,
                         speedup=eager / fwd, lever=label))
        rows.append(dict(workload="UNet training step, batch 64", baseline="SDPA default (CPU flash)", baseline_s=base_train,
                         ours_s=timed(lambda: train_step(context), steps, 3), lever=label))
        rows[-1]["speedup"] = base_train / rows[-1]["ours_s"]
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor())
    fwd, train = timed(lambda: forward(unet), steps, 3), timed(train_step, steps, 3)
    unet.set_attn_processor(AttnProcessor2_0())
    rows.append(dict(workload="UNet forward, batch 200", baseline="SDPA default (CPU flash)", baseline_s=eager, ours_s=fwd,
                     speedup=eager / fwd, lever="diffusers AttnProcessor (baddbmm + softmax)"))
    rows.append(dict(workload="UNet training step, batch 64", baseline="SDPA default (CPU flash)", baseline_s=base_train, ours_s=train,
                     speedup=base_train / train, lever="diffusers AttnProcessor (baddbmm + softmax)"))
    short = timed(lambda: forward(unet, 16), steps, 3)
    rows.append(dict(workload="UNet forward, batch 200", baseline="77-token context (SD's)", baseline_s=eager, ours_s=short,
                     speedup=eager / short, lever="16-token context"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["cpu-training", "cpu-steps", "cpu-levers", "diverse-inversion"])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--per-embedding", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    suites = dict(cpu_training=lambda: cpu_training(args.steps), cpu_steps=lambda: cpu_steps(args.steps), cpu_levers=lambda: cpu_levers(args.steps),
                  diverse_inversion=lambda: diverse_inversion(args.n, args.per_embedding, args.steps))
    rows = suites[args.suite.replace("-", "_")]()
    for r in rows:
        print(" | ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.items()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
