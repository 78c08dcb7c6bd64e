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
