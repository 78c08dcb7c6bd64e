"""Bring your own erased model: a UNet erased elsewhere, audited like the methods trained here.

Accepted per concept (config `erasure.import.paths`): a diffusers UNet folder (or a pipeline folder
with unet/), a UNet state dict as .safetensors, or an ESD-style PyTorch checkpoint (.pt/.pth/.ckpt/
.bin) holding a dict of diffusers parameter names to tensors, read with `weights_only=True` (nothing
in it is executed). Every tensor must exist in the base UNet with the same shape. Anything else stops
the job with one line naming the file and the problem; no partial model is ever written.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .job import ErasureJob, ErasureResult

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_DIFFUSERS_FILE = "diffusion_pytorch_model.safetensors"


class ImportedModelError(ValueError):
    """A user-supplied erased model that cannot be used as given (the message is one line)."""


def read_unet_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a user-supplied UNet file or folder, by diffusers parameter name."""
    p = Path(path)
    if not p.exists():
        raise ImportedModelError(f"{p}: no such file or folder (erasure.import.paths)")
    if p.is_dir():
        file = next((f for f in (p / _DIFFUSERS_FILE, p / "unet" / _DIFFUSERS_FILE) if f.is_file()), None)
        if file is None:
            raise ImportedModelError(f"{p}: a folder without {_DIFFUSERS_FILE} or unet/{_DIFFUSERS_FILE}; give a diffusers UNet folder")
        return _read_safetensors(file)
    if p.suffix == ".safetensors":
        return _read_safetensors(p)
    if p.suffix in PICKLE_SUFFIXES:
        return _read_pickle(p)
    raise ImportedModelError(f"{p}: unknown format '{p.suffix}'; give .safetensors, {', '.join(PICKLE_SUFFIXES)} or a diffusers UNet folder")


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as err:
        raise ImportedModelError(f"{p}: not a readable safetensors file (truncated or not safetensors: {_first_line(err)})") from None


def _read_pickle(p: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ImportedModelError(f"{p}: refused: it holds objects other than tensors (read with weights_only=True, nothing was "
                                 f"executed); save a dict of parameter name -> tensor") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ImportedModelError(f"{p}: not a readable PyTorch checkpoint (truncated? {_first_line(err)})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # trainers that nest the weights
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ImportedModelError(f"{p}: expected a dict of parameter name -> tensor, found {type(obj).__name__}")
    return obj


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [err.__class__.__name__])[0][:200]


def check_against_base(path: str | Path, state: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state with diffusers names (an optional `unet.` prefix dropped), every tensor present in the
    base UNet with its shape; raises ImportedModelError naming the first problem."""
    if any(k.startswith("model.diffusion_model.") for k in state):
        raise ImportedModelError(f"{path}: CompVis/LDM parameter names (model.diffusion_model.*); convert it to a diffusers UNet "
                                 f"first (diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py)")
    named = {k.removeprefix("unet."): v for k, v in state.items()}
    unknown = sorted(set(named) - set(base))
    if unknown:
        raise ImportedModelError(f"{path}: {len(unknown)} tensors the base UNet does not have, e.g. {unknown[:3]}")
    for k, v in named.items():
        if tuple(v.shape) != tuple(base[k].shape):
            raise ImportedModelError(f"{path}: tensor '{k}' has shape {tuple(v.shape)}, the base UNet's has {tuple(base[k].shape)}")
    return named


def erase(job: ErasureJob) -> ErasureResult:
    path = job.inputs["imported"]
    unet = job.model.unet
    base = unet.state_dict()
    named = check_against_base(path, read_unet_state(path), base)
    changed = sorted(k for k, v in named.items() if not torch.equal(v.to(base[k].device, base[k].dtype), base[k]))  # file on the CPU, UNet maybe on a GPU
    if not changed:
        # the pitfall of the CCE reference's UCE loader: weights that were never applied look "erased"
        raise ImportedModelError(f"{path}: every tensor equals the base model's; nothing was erased")
    with torch.no_grad():
        for k in changed:
            base[k].copy_(named[k].to(base[k].dtype))
    return ErasureResult(changed, dict(imported_from=str(path), tensors_in_file=len(named), changed_tensors_vs_base=len(changed)))
