"""Loading a text-to-image model — the embedded one or SD 1.4 — as the five parts every method uses.

A base model is a diffusers folder (or hub id) with tokenizer/, text_encoder/, vae/, unet/ and
scheduler/. An erased model is the base plus a *UNet patch*: a safetensors file holding the
parameters the erasure changed (all of them for a task vector, only `attn2` for ESD-x).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTokenizer

from .adapters import eraser_rank, install_erasers
from .atomic import atomic_path
from .base_model_check import SUBFOLDERS, BaseModelMissing, _missing_message, check_base_model  # noqa: F401 - re-exported
from .progress import log


@dataclass
class Components:
    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: DDIMScheduler
    device: torch.device

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        return (self.unet.config.in_channels, size, size)

    @property
    def vae_scale(self) -> float:
        return float(self.vae.config.scaling_factor)


def load_components(ref: str, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Components:
    """Load every part of the base model `ref` (a folder or hub id); weights via safetensors only."""
    check_base_model(ref)
    device = device or torch.device("cpu")
    kw = dict(use_safetensors=True, torch_dtype=dtype)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(ref, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(ref, subfolder="text_encoder", **kw).to(device)
        vae = AutoencoderKL.from_pretrained(ref, subfolder="vae", **kw).to(device)
        unet = UNet2DConditionModel.from_pretrained(ref, subfolder="unet", **kw).to(device)
        scheduler = DDIMScheduler.from_pretrained(ref, subfolder="scheduler")
    except OSError as err:
        raise _missing(ref, err) from None
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False).eval()
    pipeline_config_fixes(scheduler, unet)
    return Components(tokenizer, text_encoder, vae, unet, scheduler, device)


def pipeline_config_fixes(scheduler, unet) -> list[str]:
    """What `StableDiffusionPipeline.__init__` corrects in outdated SD 1.x configs, which this code (no pipeline object)
    must correct itself: a scheduler config with `steps_offset` other than 1, or without `clip_sample` (DDIM then clips
    every predicted x0 latent to [-1, 1]: most SD latents lie beyond it), and a UNet config older than diffusers 0.9 with
    `sample_size` below 64 (256-px latents for a 512-px model). Copies of SD 1.4 saved by diffusers 0.2-0.8 have them.
    Returns the fixes made (logged)."""
    import re

    fixes = []
    if getattr(scheduler.config, "steps_offset", 1) != 1:
        fixes.append(f"scheduler steps_offset {scheduler.config.steps_offset} -> 1")
        scheduler.register_to_config(steps_offset=1)
    if getattr(scheduler.config, "clip_sample", False) is True:
        fixes.append("scheduler clip_sample True -> False")
        scheduler.register_to_config(clip_sample=False)
    made_by = getattr(unet.config, "_diffusers_version", None)
    size = getattr(unet.config, "sample_size", None)
    release = tuple(int(n) for n in re.findall(r"\d+", made_by or "")[:2])
    if release and isinstance(size, int) and size < 64 and release < (0, 9):
        fixes.append(f"unet sample_size {size} -> 64 (config of diffusers {made_by})")
        unet.register_to_config(sample_size=64)
    for fix in fixes:
        log.warning("outdated SD config corrected as StableDiffusionPipeline does: %s", fix)
    return fixes


def _missing(ref: str, err: OSError) -> BaseModelMissing:
    return BaseModelMissing(_missing_message(ref) + f" ({err.__class__.__name__}: {str(err).splitlines()[0]})")


def load_base_unet_state(ref: str) -> dict[str, torch.Tensor]:
    """Only the base UNet's tensors (CPU): for arithmetic on weights, without loading VAE and text encoder."""
    check_base_model(ref)
    try:
        return UNet2DConditionModel.from_pretrained(ref, subfolder="unet", use_safetensors=True).state_dict()
    except OSError as err:
        raise _missing(ref, err) from None


def save_unet_patch(state: dict[str, torch.Tensor], names: list[str] | None, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Save the named UNet tensors of `state` (all when `names` is None) as safetensors, atomically."""
    keep = state.keys() if names is None else names
    tensors = {k: state[k].detach().to("cpu").contiguous() for k in keep}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def load_unet_patch(unet: torch.nn.Module, path: str | os.PathLike) -> list[str]:
    """Overwrite the UNet's parameters with those in the patch; every patch key must exist (adapters
    the patch carries, such as Receler's erasers, are added first)."""
    patch = load_file(str(path))
    rank = eraser_rank(patch)
    if rank is not None:
        install_erasers(unet, rank)
    own = unet.state_dict()
    unknown = sorted(set(patch) - set(own))
    if unknown:
        raise ValueError(f"UNet patch {path} has parameters this UNet lacks, e.g. {unknown[:3]}")
    with torch.no_grad():
        for k, v in patch.items():
            own[k].copy_(v.to(own[k].device, own[k].dtype))
    return sorted(patch)
