"""Pruned task vectors (TV paper, issue #6): τ applied only to chosen block groups of the UNet
(down / mid / up × attention / resnet), its α chosen by the task vector's own search and criteria
(config `erasure.task_vector`). The fine-tune is the task vector's (`finetune_on_concept`)."""
from __future__ import annotations

import torch

from .job import ErasureJob, ErasureResult
from .task_vector import negate_at_searched_alpha

_PARTS = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
_KINDS = {"attention": ".attentions.", "resnet": ".resnets."}
GROUPS = tuple(f"{part}-{kind}" for part in _PARTS for kind in _KINDS)


def in_group(name: str, group: str) -> bool:
    part, kind = group.split("-")
    return name.startswith(_PARTS[part]) and _KINDS[kind] in f".{name}"


def prune(tau: dict[str, torch.Tensor], groups: list[str]) -> dict[str, torch.Tensor]:
    """The part of τ in any of `groups`; an unknown group name or an empty result is an error."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"erasure.tv_pruned.groups: {unknown} unknown; choose from {', '.join(GROUPS)}")
    kept = {k: v for k, v in tau.items() if any(in_group(k, g) for g in groups)}
    if not kept:
        raise ValueError(f"erasure.tv_pruned.groups {groups}: no UNet parameter of this model is in them")
    return kept


def erase(job: ErasureJob) -> ErasureResult:
    groups = list(job.settings["groups"])
    result = negate_at_searched_alpha(job, job.shared["erasure.task_vector"], prune=lambda tau: prune(tau, groups))
    result.info["groups"] = groups
    return result
