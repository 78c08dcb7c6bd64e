"""The run's provenance manifest (issue #10): what a reader needs to trust or redo a results folder —
the config, the workflow's git commit, the package versions, the seeds, the sha256 of every model and
evaluator weight the results came from, and the hardware."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path

from .hardware import cpu_model
from .hashing import file_sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The weight files at `path`: the file itself, or every weight file under a model folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such weights file or model folder (the run's provenance hashes every weight it used)")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def local_model_dir(ref: str) -> str:
    """The local folder of base model `ref`: itself when it is a path, else its hub cache snapshot (offline)."""
    if Path(ref).exists():
        return ref
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(ref, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing here
        raise FileNotFoundError(f"base model '{ref}': not a folder and not in the hub cache, so its weights cannot be hashed "
                                f"({type(err).__name__}); set base_model.path to the folder the run used") from None


def hashes(named_paths: dict[str, str]) -> dict[str, dict]:
    """{role: {file: {sha256, bytes}}} for each role's file or folder."""
    return {role: {str(f): dict(sha256=file_sha256(f), bytes=f.stat().st_size) for f in weight_files(p)}
            for role, p in named_paths.items()}


def git_state(directory: str | os.PathLike) -> dict:
    """The commit of the workflow's checkout and whether it had uncommitted changes (None where it is no git checkout)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30)
    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.TimeoutExpired):
        return dict(commit=None, dirty=None, note="git not available")
    if head.returncode != 0:
        return dict(commit=None, dirty=None, note="not a git checkout (an unpacked archive?)")
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    return dict(commit=head.stdout.strip(), dirty=dirty)


def package_versions(distribution: str = "unerase") -> dict[str, str]:
    """The installed version of Python, of `distribution` and of each of its declared dependencies."""
    versions = {"python": platform.python_version()}
    try:
        versions[distribution] = importlib.metadata.version(distribution)
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    for requirement in requires:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def seeds(config: dict, prefix: str = "") -> dict[str, int]:
    """Every seed of the config ("seed", "*_seed"), by its dotted key."""
    found = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(seeds(value, dotted + "."))
        elif (key == "seed" or key.endswith("_seed")) and isinstance(value, int) and not isinstance(value, bool):
            found[dotted] = value
    return found


def hardware() -> dict:
    info = dict(machine=platform.machine(), system=platform.platform(), cpu=cpu_model(), cpu_count=os.cpu_count())
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


SCORER_KEYS = ("evaluator", "similarity_evaluator", "fid_evaluator")  # the fingerprints a metric file carries


def scorers(metric_records: list[dict]) -> list[dict]:
    """Every scorer the metric files were computed with — the evaluator, the CLIP of the Erasure Score and of the control
    task, FID's Inception — once each, with the cells it scored. Their weights are found at run time (an explicit path or
    the standard cache, not a file of the run), so the manifest takes the sha256 each scoring job took of the file it
    loaded, from its fingerprint."""
    found: dict[tuple, dict] = {}
    for record in metric_records:
        for key in SCORER_KEYS:
            fingerprint = record.get(key)
            if isinstance(fingerprint, dict):
                entry = found.setdefault((key, *(str(fingerprint.get(k)) for k in ("name", "weights", "sha256"))),
                                         dict(role=key, **fingerprint, cells=0))
                entry["cells"] += 1
    return list(found.values())


def manifest(*, config: dict, weights: dict[str, str], workflow_dir: str, scored_by: list[dict] = ()) -> dict:
    return dict(
        config=config,
        git=git_state(workflow_dir),
        packages=package_versions(),
        seeds=seeds(config),
        weights=hashes(weights),
        scorers=list(scored_by),
        hardware=hardware(),
        hardware_is=("the machine that wrote this manifest (a local job: on a cluster the node Snakemake runs on); each job's "
                     "log names the machine it ran on in its first line ('running on ...')"),
    )
