"""Where jobs run: device choice and thread count."""
from __future__ import annotations

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
