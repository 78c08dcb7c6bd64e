"""What every step does first: logging to its log file, threads, device, loading a model."""
from __future__ import annotations

import torch

import copy

from ..atomic import read_json
from ..components import Components, load_components, load_unet_patch
from ..progress import setup_logging
from ..runtime import configure_threads, pick_device


def start(threads: int = 1, log: str | None = None):
    setup_logging(log)
    configure_threads(threads)
    return pick_device()


def load_model(manifest: str, device, unet_patch: str | None = None, precision: str = "float32") -> Components:
    """The base model named in `manifest`, with an erasure's UNet patch applied when given.
    `precision` (float32 | float16 | bfloat16) is for inference jobs; training jobs keep float32."""
    components = load_components(read_json(manifest)["path"], device, getattr(torch, precision))
    if unet_patch:
        load_unet_patch(components.unet, unet_patch)
    return components


def load_guarded_model(manifest: str, device, unet_patch: str | None, sampling_options: dict | None,
                       precision: str = "float32") -> tuple[Components, dict]:
    """An audited model as a generation job samples it: the base, its weight method's UNet patch, and its guards'
    sampler options (IRECE reads the un-erased UNet's attention, kept before the patch)."""
    options = dict(sampling_options or {})
    model = load_model(manifest, device, None, precision)
    if unet_patch:
        if "irece" in options:
            options["standard_unet"] = copy.deepcopy(model.unet)
        load_unet_patch(model.unet, unet_patch)
    return model, options


def audited_model(base: Components, standard_unet, unet_patch: str, guard_options: dict) -> tuple[Components, dict]:
    """One model of a probe's list over a loaded base: the base's components with a fresh copy of the
    un-erased UNet (`standard_unet`) and `unet_patch` ("" for none) applied, and its guards' sampler
    options (IRECE reads the un-erased UNet's attention)."""
    components = copy.copy(base)
    components.unet = copy.deepcopy(standard_unet)
    if unet_patch:
        load_unet_patch(components.unet, unet_patch)
    options = dict(guard_options)
    if "irece" in options:
        options["standard_unet"] = standard_unet
    return components, options
