"""SD 1.4 size on a GPU (issues #10, #7): random weights of SD 1.4's real architecture (no download;
rates do not depend on the weights), every rate against its baseline measured in the same run.

  python bench/bench_sd14.py --out bench/results/sd14_h200.json [--sections sampling,di,esd,ti,compile]
  python bench/bench_sd14.py --size tiny   # the same code on the embedded model's size, on the CPU:
                                           # checks the script before GPU time is spent on it

Sections (each row also records the workload's peak GPU memory):
- sampling: images/s of our sampler (`unerase.sampling.generate`) and of plain diffusers
  `StableDiffusionPipeline` fp16, 50 DDIM steps, CFG 7.5, at batch 1 / 8 / 32; then our sampler with
  the UNet in channels_last, and compiled (`torch.compile`, default mode) with fused QKV projections,
  with the compile's own seconds; the share of the GPU's bf16 peak measured in this run (an 8192^3
  matrix product) at protocols.md's 82.9 TFLOP per 512-px image;
- esd: seconds per ESD-x iteration of the reference loop's structure (x_t sampled by the model being
  trained: up to 50 CFG DDIM steps, then the frozen and the trained UNet; fp32 as
  rohitgandikota/erasing) against x_t from noised concept images (the embedded default's `xt_source`);
- ti: textual-inversion steps/s, batch 4, fp32 weights, against the same under bfloat16 autocast;
- di: Diverse Inversion, n embeddings x 1 row in one batch (fp32, bf16 autocast, gradient checkpointing, both)
  against n sequential fp32 inversions;
- memory: the activations autograd keeps for the backward of one UNet call per row of the batch, with
  and without gradient checkpointing (`unerase.runtime.activation_checkpointing`), counted from the
  saved tensors (weights left out), so it runs on any device (`--device cpu`: no GPU needed), with the
  step time of each; what the sd14 config's inversion attacks would keep at their batch sizes; and on a GPU two
  steps of each of those attacks as configured, with their peak memory.
Rows are written to --out after every section, so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from unerase import architecture
from unerase.components import Components
from unerase.diffusion import LatentBank
from unerase.tokenizer import build_clip_tokenizer

from bench_speed import _sync as sync, timed  # noqa: E402 - bench/ is on sys.path when run as a script

TFLOP_PER_IMAGE = 82.9  # protocols.md: SD 1.4, 50 CFG DDIM steps at 512 px with the VAE decode
ROWS: list[dict] = []


def reset_peak():
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def emit(out: Path | None, **row):
    ROWS.append(row)
    print(json.dumps(row), flush=True)
    if out:
        out.write_text(json.dumps(ROWS, indent=2))


def components(size: str, device, dtype) -> Components:
    tok = build_clip_tokenizer(tempfile.mkdtemp())
    if size == "sd14":
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD 1.x UNet
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512,
                            scaling_factor=0.18215)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    else:
        text, vae, unet = architecture.make_text_encoder(len(tok)), architecture.make_vae(), architecture.make_unet()
    for m in (unet, vae, text):
        m.to(device, dtype).requires_grad_(False).eval()
    return Components(tok, text, vae, unet, architecture.make_sampling_scheduler(), device)


def concept_bank(c: Components, size: str) -> LatentBank:
    channels, px = (3, 512) if size == "sd14" else (c.vae.config.in_channels, 16)
    images = torch.rand(8, channels, px, px, generator=torch.Generator().manual_seed(0)).to(c.device, c.vae.dtype) * 2 - 1
    return LatentBank(c.vae, images, c.vae_scale)


def bf16_peak_tflops(device) -> float | None:
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    s = timed(lambda: a @ b, 10, 3)
    return 2 * 8192 ** 3 / s / 1e12


_CACHE: dict = {}


def cached_components(size: str, device, dtype) -> Components:
    """One model per precision for the whole run: the rates do not depend on the (random) weights,
    so training sections may keep editing the same UNet and text encoder."""
    key = (size, dtype)
    if key not in _CACHE:
        _CACHE[key] = components(size, device, dtype)
    return _CACHE[key]


def _sampler(c, steps):
    from unerase.sampling import generate

    return lambda batch: lambda: generate(c, ["a photo of a church"] * batch, list(range(batch)), 7.5, steps, batch)


def _sampling_row(out, size, workload, batch, s, baseline_s=None, **extra):
    peak = _CACHE.get("peak_tflops")
    r = dict(section="sampling", workload=workload, batch=batch, images_per_s=batch / s, peak_gib=peak_gib(), **extra)
    if baseline_s:
        r["speedup_vs_pipeline"] = baseline_s / s
    if peak and size == "sd14":
        r["bf16_peak_share"] = TFLOP_PER_IMAGE * batch / s / peak
    emit(out, **r)


def sampling(out, size, device, batches, steps):
    from diffusers import StableDiffusionPipeline

    _CACHE["peak_tflops"] = bf16_peak_tflops(device)
    emit(out, section="sampling", workload="bf16 matrix product 8192^3 (this run's peak)", tflops=_CACHE["peak_tflops"])
    c = cached_components(size, device, torch.float16 if device.type == "cuda" else torch.float32)
    pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, scheduler=c.scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    ours = _sampler(c, steps)
    plain = _CACHE.setdefault("plain_s", {})
    for batch in batches:
        reps = 1 if batch >= 32 else 2 if batch > 1 else 3
        reset_peak()
        plain[batch] = timed(lambda: pipe(["a photo of a church"] * batch, num_inference_steps=steps, guidance_scale=7.5,
                                            output_type="pt"), reps, 1)
        _sampling_row(out, size, "diffusers StableDiffusionPipeline, fp16", batch, plain[batch])
        reset_peak()
        _sampling_row(out, size, "ours (unerase.sampling.generate), fp16", batch, timed(ours(batch), reps, 1), plain[batch])
    c.unet.to(memory_format=torch.channels_last)
    reset_peak()
    _sampling_row(out, size, "ours, UNet channels_last", batches[-1], timed(ours(batches[-1]), 1, 1), plain[batches[-1]])


def compiled_sampling(out, size, device, batch, steps):
    """torch.compile (default mode) of the channels_last UNet with fused QKV projections and the inductor
    settings of PyTorch's "Accelerating Generative AI III" post; the compile's seconds reported apart."""
    import torch._inductor.config as inductor

    c = cached_components(size, device, torch.float16 if device.type == "cuda" else torch.float32)
    ours = _sampler(c, steps)
    inductor.conv_1x1_as_mm = True
    inductor.epilogue_fusion = False
    c.unet.to(memory_format=torch.channels_last)
    c.unet.fuse_qkv_projections()
    c.unet.compile(fullgraph=True)
    reset_peak()
    t0 = time.perf_counter()
    ours(batch)()
    sync()
    first = time.perf_counter() - t0
    s = timed(ours(batch), 2, 0)
    _sampling_row(out, size, "ours, channels_last + fused QKV + torch.compile", batch, s, _CACHE.get("plain_s", {}).get(batch),
                  compile_s=first - s)


def esd(out, size, device, iterations):
    from unerase.erasure.esd import erase_esd

    c = cached_components(size, device, torch.float32)
    bank = concept_bank(c, size)
    kw = dict(method="esd-x", templates=["a photo of a {}"], concept_text="church", lr=1e-5, negative_guidance=1.0, batch_size=1,
              ddim_steps=50, start_guidance=3.0, seed=0)
    results = {}
    for label, xt in [("reference loop's structure: x_t sampled by the model, fp32", "model"),
                      ("x_t from noised concept images, fp32", "concept_images")]:
        reset_peak()
        erase_esd(c, bank, iterations=2, xt_source=xt, **kw)  # warm-up
        sync()
        t0 = time.perf_counter()
        erase_esd(c, bank, iterations=iterations, xt_source=xt, **kw)
        sync()
        results[label] = (time.perf_counter() - t0) / iterations
        base = next(iter(results.values()))
        emit(out, section="esd", workload=f"ESD-x iteration, batch 1: {label}", seconds_per_iteration=results[label],
             speedup_vs_reference_structure=base / results[label], peak_gib=peak_gib())


def textual_inversion(out, size, device, steps):
    from unerase.inversion import invert

    rates = {}
    c = cached_components(size, device, torch.float32)
    bank = concept_bank(c, size)
    for label, ctx in [("fp32", contextlib.nullcontext), ("bfloat16 autocast", lambda: torch.autocast(device.type, torch.bfloat16))]:
        reset_peak()
        kw = dict(templates=["a photo of a {}"], num_vectors=1, init_text="object", lr=5e-3, batch_size=4, seed=0)
        tag = label.split()[0]
        with ctx():
            invert(c, bank, token=f"<w{tag}>", steps=2, **kw)
            sync()
            t0 = time.perf_counter()
            invert(c, bank, token=f"<b{tag}>", steps=steps, **kw)
            sync()
        rates[label] = steps / (time.perf_counter() - t0)
        emit(out, section="ti", workload=f"textual-inversion step, batch 4, {label}", steps_per_s=rates[label],
             speedup_vs_fp32=rates[label] / rates["fp32"], peak_gib=peak_gib())


def diverse_inversion(out, size, device, n, steps):
    """n embeddings x 1 row in one batch, fp32 and with the levers of issue #7 (bf16 autocast, gradient checkpointing),
    each against n sequential fp32 inversions timed in the same run (the reference's way: one embedding at a time)."""
    from unerase.attacks.diverse_inversion import diverse_invert

    c = cached_components(size, device, torch.float32)
    bank = concept_bank(c, size)
    kw = dict(concept_text="zero", templates=["a photo of the digit {}"], total=n, bands=[[-0.2, 0.2], [0.2, 0.6]], pairwise_max=1.0,
              diversity_weight=0.0, lr=1e-2, batch_per_embedding=1, seed=0)
    diverse_invert(c, bank, token="<warm>", indices=list(range(n)), steps=2, **kw)
    t0 = time.perf_counter()
    for k in range(n):  # the same embeddings one after another (own token names: the tokenizer keeps the others)
        diverse_invert(c, bank, token=f"<one{k}>", indices=[k], steps=steps, **kw)
    sync()
    sequential = time.perf_counter() - t0
    variants = [("fp32", {}), ("bf16 autocast", dict(precision="bfloat16")), ("fp32, gradient checkpointing", dict(gradient_checkpointing=True)),
                ("bf16 autocast, gradient checkpointing", dict(precision="bfloat16", gradient_checkpointing=True))]
    for i, (label, extra) in enumerate(variants):
        if i:
            diverse_invert(c, bank, token=f"<warm{i}>", indices=list(range(n)), steps=1, **kw, **extra)
        reset_peak()
        sync()
        t0 = time.perf_counter()
        diverse_invert(c, bank, token=f"<all{i}>", indices=list(range(n)), steps=steps, **kw, **extra)
        sync()
        together = time.perf_counter() - t0
        emit(out, section="di", workload=f"Diverse Inversion, {n} embeddings x 1 row, {steps} steps, {label}",
             baseline="n sequential fp32 inversions", baseline_embedding_steps_per_s=n * steps / sequential,
             ours_embedding_steps_per_s=n * steps / together, speedup=sequential / together, peak_gib=peak_gib())


def saved_activation_bytes(c: Components, fn) -> int:
    """Bytes of the tensors autograd saves for the backward of `fn()`, the model's weights left out."""
    weights = {p.untyped_storage().data_ptr() for m in (c.unet, c.text_encoder) for p in m.parameters()}
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def memory(out, size, device):
    """Activation memory per row of a UNet training call at SD 1.4 size (latent 64 x 64, 77 tokens), with and without
    gradient checkpointing; the per-row figure is the difference between batch 2 and batch 1 (what a row adds)."""
    import yaml

    from unerase.runtime import activation_checkpointing

    c = cached_components(size, device, torch.float32)
    ch, hw = c.unet.config.in_channels, c.unet.config.sample_size
    width = c.text_encoder.config.hidden_size
    per_row, step_s = {}, {}
    for on in (False, True):
        with activation_checkpointing(c.unet, on):
            kept = {}
            for b in (1, 2):
                x = torch.randn(b, ch, hw, hw, device=device)
                ctx = torch.randn(b, 77, width, device=device, requires_grad=True)
                kept[b] = saved_activation_bytes(c, lambda: c.unet(x, torch.full((b,), 500, device=device), encoder_hidden_states=ctx).sample)

            def step():
                ctx.grad = None
                c.unet(x, torch.full((b,), 500, device=device), encoder_hidden_states=ctx).sample.square().mean().backward()

            step_s[on] = timed(step, 2 if size == "sd14" else 5, 1)
        per_row[on] = (kept[2] - kept[1]) / 2**30
        emit(out, section="memory", workload=f"UNet forward + backward, batch 2, gradient checkpointing {'on' if on else 'off'}",
             activation_mib_per_row=round(per_row[on] * 1024, 1), activation_mib_batch_1=round(kept[1] / 2**20, 1),
             seconds_per_step=step_s[on], device=str(device))
    emit(out, section="memory", workload="gradient checkpointing against none", activation_ratio=per_row[False] / per_row[True],
         step_time_ratio=step_s[True] / step_s[False])
    if size == "sd14":  # what the sd14 config's attacks keep (rows of UNet graphs alive at the backward)
        attacks = yaml.safe_load((Path(__file__).parent.parent / "config" / "sd14.yaml").read_text())["attacks"]
        di, ci = attacks["diverse_inversion"], attacks["concept_inversion"]
        for name, rows in (("Diverse Inversion", di["num_embeddings"] * di["batch_per_embedding"]),
                           ("Concept Inversion through SLD", ci["sld_unroll"] * ci["batch_size"])):
            emit(out, section="memory", workload=f"sd14.yaml {name}: {rows} UNet rows kept for the backward",
                 activation_gib_without=round(rows * per_row[False], 1), activation_gib_with=round(rows * per_row[True], 1))
        if device.type == "cuda":  # the real thing: two steps of each with sd14.yaml's settings, peak GPU memory
            sd14_attack_peaks(out, c, di, ci)


def sd14_attack_peaks(out, c: Components, di: dict, ci: dict):
    """Two steps of sd14.yaml's Diverse Inversion and of its Concept Inversion through SLD-Max, as configured (batch, unroll,
    precision, gradient checkpointing), with the peak GPU memory of each: does the config fit the card?"""
    from unerase.attacks.diverse_inversion import diverse_invert
    from unerase.attacks.sld_inversion import SldUnrolledObjective
    from unerase.inversion import invert

    bank = concept_bank(c, "sd14")
    n = di["num_embeddings"]
    runs = {
        "Diverse Inversion": lambda: diverse_invert(
            c, bank, token="<peak-di>", concept_text="church", templates=["a photo of a {}"], indices=list(range(n)), total=n,
            bands=di["bands"], pairwise_max=di["pairwise_max"], diversity_weight=di["diversity_weight"], lr=di["lr"],
            batch_per_embedding=di["batch_per_embedding"], steps=2, seed=0, precision=di.get("precision", "float32"),
            gradient_checkpointing=di.get("gradient_checkpointing", False)),
        "Concept Inversion through SLD-Max": lambda: invert(
            c, bank, token="<peak-ci>", templates=["a photo of a {}"], num_vectors=ci["num_vectors"], init_text=ci["init_text"], lr=ci["lr"],
            batch_size=ci["batch_size"], steps=2, seed=0, precision=ci.get("precision", "float32"),
            gradient_checkpointing=ci.get("gradient_checkpointing", False),
            objective=SldUnrolledObjective(c, preset="max", safety_concept="church", named_prompts=["a photo of a church"],
                                           guidance_scale=7.5, unroll=ci["sld_unroll"], window=ci["sld_window"])),
    }
    for name, run in runs.items():
        torch.cuda.empty_cache()
        reset_peak()
        t0 = time.perf_counter()
        try:
            run()
            sync()
            emit(out, section="memory", workload=f"sd14.yaml {name}, 2 steps as configured", seconds_per_step=(time.perf_counter() - t0) / 2,
                 peak_gib=peak_gib(), card_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if torch.cuda.is_available() else None)
        except torch.cuda.OutOfMemoryError as err:
            emit(out, section="memory", workload=f"sd14.yaml {name}, 2 steps as configured", error=f"out of memory: {str(err)[:200]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["sd14", "tiny"], default="sd14")
    p.add_argument("--sections", default="sampling,di,esd,ti,compile,memory")
    p.add_argument("--out", type=Path)
    p.add_argument("--di-n", type=int, default=64)
    p.add_argument("--device", help="default: cuda at sd14 size, cpu at tiny size (the memory section runs on either)")
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if args.size == "sd14" else "cpu"))
    if args.size == "tiny":
        torch.set_num_threads(1)
    sd = args.size == "sd14"
    print("device:", torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "| torch", torch.__version__, flush=True)
    jobs = dict(sampling=lambda: sampling(args.out, args.size, device, [1, 8, 32] if sd else [1, 4], 50 if sd else 4),
                compile=lambda: compiled_sampling(args.out, args.size, device, 32 if sd else 4, 50 if sd else 4),
                esd=lambda: esd(args.out, args.size, device, 6 if sd else 2),
                ti=lambda: textual_inversion(args.out, args.size, device, 20 if sd else 3),
                di=lambda: diverse_inversion(args.out, args.size, device, args.di_n, 6 if sd else 2),
                memory=lambda: memory(args.out, args.size, device))
    failed = []
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            jobs[name]()
        except Exception as err:  # noqa: BLE001 - a section that breaks must not cost the others' GPU time
            failed.append(name)
            emit(args.out, section=name, error=f"{err.__class__.__name__}: {err}"[:500])
        print(f"== {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
