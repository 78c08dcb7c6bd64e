"""Prompt sets: how concepts and classes are turned into text."""
from __future__ import annotations

import random

EMPTY_PROMPT = ""


def fill(templates: list[str], name: str) -> list[str]:
    return [t.format(name) for t in templates]


def balanced_prompts(templates: list[str], names: list[str], count: int) -> tuple[list[str], list[str]]:
    """`count` prompts with the names as evenly represented as possible (round-robin over names,
    templates advancing each full round), so a control set covers every other class."""
    prompts, owners = [], []
    for i in range(count):
        name = names[i % len(names)]
        template = templates[(i // len(names)) % len(templates)]
        prompts.append(template.format(name))
        owners.append(name)
    return prompts, owners


def sample_caption(rng: random.Random, templates: list[str], name: str, empty_prob: float) -> str:
    """A training caption for one image: empty with probability `empty_prob` (for CFG)."""
    if rng.random() < empty_prob:
        return EMPTY_PROMPT
    return rng.choice(templates).format(name)
