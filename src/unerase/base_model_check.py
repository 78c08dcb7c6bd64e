"""Is the configured base model there? Checked before any GPU job starts, without importing
diffusers or transformers (a job that only checks should not pay their ~8 s of imports)."""
from __future__ import annotations

import os
from pathlib import Path

SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")


class BaseModelMissing(RuntimeError):
    """The configured base model's weights are not where the config says."""


def _missing_message(ref: str) -> str:
    return (
        f"base model '{ref}' not found: provide a diffusers folder with {', '.join(SUBFOLDERS)} "
        f"(e.g. `hf download CompVis/stable-diffusion-v1-4 --local-dir models/sd14` on a machine with "
        f"internet, then set base_model.path to that folder), or use base_model.source: embedded"
    )


def check_base_model(ref: str) -> None:
    """Fail with one line naming what to provide when `ref` is neither a complete folder nor a cached hub id."""
    path = Path(ref)
    if path.exists():
        absent = [s for s in SUBFOLDERS if not (path / s).is_dir()]
        if absent or not (path / "model_index.json").exists():
            raise BaseModelMissing(_missing_message(ref) + f" (missing in that folder: {', '.join(absent) or 'model_index.json'})")
        return
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(ref, allow_patterns=["model_index.json"], local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise BaseModelMissing(_missing_message(ref) + f" ({type(err).__name__})") from None
