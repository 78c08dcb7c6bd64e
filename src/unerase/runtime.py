"""Where jobs run: device choice and thread count."""
from __future__ import annotations

from contextlib import contextmanager

import torch


def pick_device() -> torch.device:
    """The GPU when there is one, else the CPU: the same code runs on a laptop and on a cluster."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_threads(threads: int) -> None:
    # Snakemake's `threads:` decides: on a loaded 2-core machine two threads per job were many times
    # slower than one (issue #2), so a job never takes more than it was given.
    torch.set_num_threads(max(1, int(threads)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


@contextmanager
def repeatable_on_cpu(device: torch.device):
    """PyTorch's deterministic kernels while training on the CPU. With two threads some CPU kernels accumulate
    in thread order: three runs of the base model's first 30 steps gave three different UNets (max difference
    ~7e-6, enough to move single-seed cells by points); with this, three identical ones, ~5 % slower (README).
    Not on a GPU, where CUDA's deterministic paths need CUBLAS_WORKSPACE_CONFIG and cost more."""
    if device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def training_autocast(device: torch.device, precision: str):
    """The forward passes of a training step under autocast to `precision` (float32: none). The trained
    tensors, the optimiser and the backward's accumulation stay float32 (mixed precision); on an H200
    bfloat16 gave textual inversion 1.45x at SD 1.4 size, on the CPU it is slower (README)."""
    dtype = getattr(torch, precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


@contextmanager
def activation_checkpointing(unet, enabled: bool):
    """The UNet's blocks recompute their activations in the backward pass instead of keeping them
    (diffusers' gradient checkpointing), for the inversion attacks' training loops. At SD 1.4 size a
    row of the batch keeps 1.37 GiB of activations for the backward, 0.28 GiB with this (measured:
    bench/bench_sd14.py memory; README): the sd14 config's 100 Diverse-Inversion rows and its
    SLD-unrolled inversion (26 UNet graphs x batch 4) need ~140 GiB without it, ~30 GiB with it. The
    arithmetic is the same; the price is about one more forward per step. Restored afterwards, so a
    job that samples after learning (the inline attacks) samples as before."""
    if not enabled or unet.is_gradient_checkpointing:
        yield
        return
    unet.enable_gradient_checkpointing()
    try:
        yield
    finally:
        unet.disable_gradient_checkpointing()
