import json

import pytest
import torch
from diffusers import StableDiffusionPipeline

from unerase.components import BaseModelMissing, check_base_model, load_components, load_unet_patch, save_unet_patch
from unerase.sampling import generate


def test_embedded_folder_is_a_standard_pipeline(tiny_pipeline_dir):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir, safety_checker=None, requires_safety_checker=False)
    out = pipe("the digit one", num_inference_steps=2, height=16, width=16, output_type="pt")
    assert out.images.shape[-2:] == (16, 16)


def test_sampling_is_deterministic_per_seed(tiny_pipeline_dir):
    model = load_components(str(tiny_pipeline_dir))
    a = generate(model, ["the digit one", "the digit two"], [5, 6], 3.0, 3, batch_size=2)
    b = generate(model, ["the digit two"], [6], 3.0, 3, batch_size=1)
    assert a.dtype == torch.uint8 and a.shape == (2, 1, 16, 16)
    assert torch.equal(a[1], b[0])  # image i depends on its own seed, not on its batch


def test_guidance_one_samples_the_conditional_prediction_alone(tiny_pipeline_dir):
    # ε_u + 1·(ε_c − ε_u) = ε_c: at guidance 1 (the memories probe's reconstructions) the unconditional half is skipped
    from unerase.sampling import ddim_loop, initial_latents
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    rows = []
    model.unet.register_forward_pre_hook(lambda module, args: rows.append(len(args[0])))
    x = initial_latents(model.latent_shape, [1, 2, 3], "cpu")
    cond = encode(model.tokenizer, model.text_encoder, ["the digit one", "two", "a 3"])
    uncond = encode(model.tokenizer, model.text_encoder, [""] * 3)
    fast, _ = ddim_loop(model.unet, model.scheduler, x, cond, uncond, 1.0, 4)
    assert rows == [3] * 4
    rows.clear()
    both, _ = ddim_loop(model.unet, model.scheduler, x, cond, uncond, 1.0 + 1e-9, 4)  # the full guidance, as before
    assert rows == [6] * 4
    assert torch.allclose(fast, both, atol=1e-5), (fast - both).abs().max()
    rows.clear()
    ddim_loop(model.unet, model.scheduler, x, cond, uncond, 3.0, 4)
    assert rows == [6] * 4  # any other scale guides as before


def test_unet_patch_roundtrip(tiny_pipeline_dir, tmp_path):
    model = load_components(str(tiny_pipeline_dir))
    name = next(n for n, _ in model.unet.named_parameters() if ".attn2.to_k." in n)
    with torch.no_grad():
        dict(model.unet.named_parameters())[name].add_(1.0)
    save_unet_patch(model.unet.state_dict(), [name], tmp_path / "patch.safetensors")
    fresh = load_components(str(tiny_pipeline_dir))
    assert load_unet_patch(fresh.unet, tmp_path / "patch.safetensors") == [name]
    assert torch.equal(dict(fresh.unet.named_parameters())[name], dict(model.unet.named_parameters())[name])


def test_random_weight_sd_layout_loads(sd_layout_dir):
    """The SD 1.4 path: RGB VAE, 4-channel latents, 77-token CLIP text — same loader, random weights."""
    model = load_components(str(sd_layout_dir))
    images = generate(model, ["a photo of a church"], [0], 7.5, 2, batch_size=1)
    assert images.shape == (1, 3, 16, 16)


def test_an_outdated_sd_config_is_corrected_as_the_pipeline_corrects_it(tiny_pipeline_dir, tmp_path):
    """Copies of SD 1.4 saved by early diffusers have a PNDM scheduler config without clip_sample (DDIM would clip every
    predicted x0 latent to [-1, 1]) and steps_offset 0, and a UNet config with sample_size 32; StableDiffusionPipeline
    fixes all three when it is built, and this code builds no pipeline, so load_components does."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_pipeline_dir, old)
    scheduler_file = old / "scheduler/scheduler_config.json"
    config = json.loads(scheduler_file.read_text())
    config.pop("clip_sample", None)
    config.update(_class_name="PNDMScheduler", _diffusers_version="0.2.2", steps_offset=0)
    scheduler_file.write_text(json.dumps(config))
    unet_file = old / "unet/config.json"
    unet_file.write_text(json.dumps({**json.loads(unet_file.read_text()), "_diffusers_version": "0.4.0"}))
    model = load_components(str(old))
    assert model.scheduler.config.clip_sample is False and model.scheduler.config.steps_offset == 1
    assert model.unet.config.sample_size == 64 and model.latent_shape == (4, 64, 64)
    current = load_components(str(tiny_pipeline_dir))  # a config of today's diffusers is left as it is
    assert current.unet.config.sample_size == 8 and current.scheduler.config.clip_sample is False


def test_missing_folder_names_what_to_provide(tmp_path):
    with pytest.raises(BaseModelMissing, match="provide a diffusers folder with tokenizer, text_encoder, vae, unet, scheduler"):
        check_base_model(str(tmp_path / "nowhere"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model_index.json").write_text(json.dumps({}))
    with pytest.raises(BaseModelMissing, match="missing in that folder: tokenizer, text_encoder"):
        load_components(str(tmp_path / "half"))


def test_uncached_hub_id_stops_with_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(BaseModelMissing) as err:
        check_base_model("CompVis/stable-diffusion-v1-4")
    msg = str(err.value)
    assert "CompVis/stable-diffusion-v1-4" in msg and "base_model.path" in msg and "\n" not in msg


def test_reduced_precision_sampling_matches_float32(tiny_pipeline_dir):
    """bfloat16 inference (float16 on GPUs) draws the same images as float32, up to rounding."""
    full = load_components(str(tiny_pipeline_dir))
    half = load_components(str(tiny_pipeline_dir), dtype=torch.bfloat16)
    assert half.unet.dtype == torch.bfloat16
    a = generate(full, ["the digit one"] * 2, [1, 2], 3.0, 3, batch_size=2).float()
    b = generate(half, ["the digit one"] * 2, [1, 2], 3.0, 3, batch_size=2).float()
    assert b.shape == a.shape and (a - b).abs().mean() < 8  # of 255


def test_lr_factor_warmup_then_constant_or_cosine():
    import math

    import pytest

    from unerase.embedded_model import lr_factor

    assert lr_factor(0, 10, 100, "constant") == pytest.approx(0.1) and lr_factor(9, 10, 100, "cosine") == 1.0
    assert lr_factor(50, 10, 100, "constant") == 1.0
    assert lr_factor(10, 10, 100, "cosine") == 1.0 and lr_factor(55, 10, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 10, 100, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    with pytest.raises(ValueError, match="unknown lr schedule 'linear'"):
        lr_factor(50, 10, 100, "linear")
