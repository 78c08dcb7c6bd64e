"""Prompt sets: how concepts and classes are turned into text."""
from __future__ import annotations

import random
import re

EMPTY_PROMPT = ""


def names_concept(prompt: str, concept: str) -> bool:
    """Whether `prompt` names `concept` as whole words ("six" not in "sixty", "garbage_truck" as "garbage truck"): such a
    control-task prompt measures the erasure itself, not the model's other abilities, and is left out of its control."""
    return re.search(rf"\b{re.escape(concept.replace('_', ' '))}\b", prompt, re.IGNORECASE) is not None


def control_prompts(prompts: list[str], count: int) -> list[str]:
    """The control task's prompt of image i: the prompts in turn, so each gets count / len(prompts) images (the first
    ones one more)."""
    if not prompts:
        raise ValueError("config key 'evaluation.control_task.prompts' is empty: the control task needs its prompts")
    return [prompts[i % len(prompts)] for i in range(count)]


def class_text(name: str) -> str:
    """A class's words in a prompt: config names join words with "_" (garbage_truck -> "garbage truck"), as the concept's
    own text, the erasure jobs' other classes and the CLIP evaluators' class prompts do."""
    return name.replace("_", " ")


def balanced_prompts(templates: list[str], names: list[str], count: int) -> tuple[list[str], list[str]]:
    """`count` prompts with the names as evenly represented as possible (round-robin over names,
    templates advancing each full round), so a control set covers every other class. Owners are the config names."""
    prompts, owners = [], []
    for i in range(count):
        name = names[i % len(names)]
        template = templates[(i // len(names)) % len(templates)]
        prompts.append(template.format(class_text(name)))
        owners.append(name)
    return prompts, owners


def sample_caption(rng: random.Random, templates: list[str], name: str, empty_prob: float) -> str:
    """A training caption for one image: empty with probability `empty_prob` (for CFG)."""
    if rng.random() < empty_prob:
        return EMPTY_PROMPT
    return rng.choice(templates).format(name)


def build_prompts(prompt_set: str, templates: list[str], concept_text: str, label: int, classes: dict[str, int],
                  num_images: int, placeholder: str | list[str] | None = None,
                  attack_prompts: list[str] | None = None) -> tuple[list[str], list[int]]:
    """name: the concept's own name in every template; control: every other class; an attack's set:
    its learned tokens (`placeholder`) in every template, or its found prompts (`attack_prompts`) in turn.
    Several learned tokens (a Diverse-Inversion set) take turns: image i uses token i mod P in
    template (i div P) mod T, so each token meets every template."""
    if prompt_set == "control":
        others = [name for name, lab in sorted(classes.items(), key=lambda kv: kv[1]) if lab != label]
        prompts, owners = balanced_prompts(templates, others, num_images)
        return prompts, [classes[o] for o in owners]
    if prompt_set == "name" or placeholder is not None:
        texts = [concept_text] if prompt_set == "name" else [placeholder] if isinstance(placeholder, str) else list(placeholder)
        P = len(texts)
        return [templates[(i // P) % len(templates)].format(texts[i % P]) for i in range(num_images)], [label] * num_images
    if attack_prompts:
        return [attack_prompts[i % len(attack_prompts)] for i in range(num_images)], [label] * num_images
    raise ValueError(f"prompt set '{prompt_set}': neither the name, the control set, nor an attack's tokens or prompts")
