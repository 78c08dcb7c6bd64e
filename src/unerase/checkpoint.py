"""Resumable training: periodic checkpoints outside the job's declared outputs.

A checkpoint is tagged with a fingerprint of the job's hyper-parameters, so one left by a run with
other settings is ignored rather than resumed. Loading uses `weights_only=True`: no pickled code.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .atomic import atomic_path
from .progress import log


def fingerprint(params) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


# What the running Snakemake job is beyond its hyper-parameters (set by unerase.steps.snakemake_adapter): the
# fingerprint of the package code it runs and its input files' size and time. Every checkpoint of the job is
# tagged with it too, so a checkpoint left by a killed job is resumed by that job's rerun, not by a job that
# Snakemake re-runs because an input (the base model, the concept images) or the code changed since.
JOB = {}


def tag_job(code=None, inputs=()) -> None:
    JOB.clear()
    stats = {}
    for f in inputs:
        try:
            st = os.stat(f)
            stats[str(f)] = [st.st_size, st.st_mtime_ns]
        except OSError:
            stats[str(f)] = None
    JOB.update(code=code, inputs=stats)


class Checkpointer:
    def __init__(self, path: str | os.PathLike | None, params, every: int):
        self.path = Path(path) if path else None
        self.tag = fingerprint({"params": params, "job": JOB} if JOB else params)
        self.every = max(1, int(every))

    def load(self) -> dict | None:
        if not self.path:
            return None
        if not self.path.exists():
            log.info("checkpoint every %d steps at %s: a rerun after a kill resumes there", self.every, self.path)
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.tag:
            log.info("ignoring checkpoint %s: written with other settings", self.path)
            return None
        log.info("resuming from checkpoint %s at step %d", self.path, state["step"])
        return state

    def maybe_save(self, step: int, total: int, make_state) -> None:
        """Save after step `step` (0-based) every `every` steps, except after the last one."""
        if not self.path or (step + 1) % self.every or step + 1 == total:
            return
        self.save_now(make_state(), step + 1)

    def save_now(self, state: dict, step: int = 0) -> None:
        """Save `state` at once (a stage that ends in one result, e.g. a Fisher computed before training)."""
        if not self.path:
            return
        state = dict(state, step=step, fingerprint=self.tag)
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def clear(self) -> None:
        if self.path and self.path.exists():
            self.path.unlink()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def pyrng_to_tensor(state) -> torch.Tensor:
    """Python's random.Random state as a tensor (a checkpoint loaded with weights_only holds tensors only)."""
    version, internal, _ = state
    return torch.tensor([version, *internal], dtype=torch.int64)


def pyrng_from_tensor(t: torch.Tensor):
    values = t.tolist()
    return (values[0], tuple(values[1:]), None)
