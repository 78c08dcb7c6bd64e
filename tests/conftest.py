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
