"""The embedded default: a tiny text-to-image latent diffusion model made of SD 1.4's own classes.

Sizes follow the feasibility design recorded in issue #2 / shared/reference/protocols.md:
16×16 images, 8×8 latents, UNet (32, 64) with cross-attention dim 64, VAE (16, 32),
a 2-layer CLIP text encoder of width 64 reading prompts padded to 77 tokens.
"""
from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .tokenizer import MODEL_MAX_LENGTH

TEXT_WIDTH = 64
LATENT_CHANNELS = 4

# SD 1.4's noise schedule (scaled-linear betas over 1,000 steps).
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def make_vae(image_channels: int = 1) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=image_channels,
        out_channels=image_channels,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=16,
    )


def make_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,
        norm_num_groups=16,
    )


def make_text_encoder(vocab_size: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MODEL_MAX_LENGTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    return CLIPTextModel(config)


def make_training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULE, clip_sample=False, prediction_type="epsilon")


def make_sampling_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
