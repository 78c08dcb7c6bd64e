import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    from unerase.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tokenizer):
    """A random-weight text-to-image model of the embedded architecture, saved as a diffusers folder."""
    from diffusers import StableDiffusionPipeline

    from unerase import architecture

    torch.manual_seed(0)
    vae = architecture.make_vae()
    vae.register_to_config(scaling_factor=1.0)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=architecture.make_text_encoder(len(tokenizer)), tokenizer=tokenizer,
                                   unet=architecture.make_unet(), scheduler=architecture.make_sampling_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = tmp_path_factory.mktemp("pipe") / "model"
    pipe.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def sd_layout_dir(tmp_path_factory, tokenizer):
    """A random-weight model of SD 1.4's layout (RGB VAE, 4-channel latents, CLIP text with 77
    positions), small: the SD path of every step, without weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, scaling_factor=0.18215)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=32,
                                norm_num_groups=8, attention_head_dim=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, max_position_embeddings=77))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                          steps_offset=1)
    out = tmp_path_factory.mktemp("sd") / "sd"
    StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=sched, safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(out, safe_serialization=True)
    return out


# A tiny open_clip CLIP (the classes of ViT-B/32 and ViT-L-14, one layer each) for evaluator tests on random weights.
TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """The tiny CLIP with random weights as an open_clip `local-dir:` folder (its config beside its weights), so that a
    Snakemake job's own process finds the architecture too. Returns (model name, weights file)."""
    import json

    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip_dir")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", pretrained=None)
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder}", folder / "open_clip_model.safetensors"
