"""CLIP similarity between each image and the name of its intended class: the Task-Vector paper's measure
(§5.1: CLIP ViT-B/32 pre-trained on LAION-2B; protocols.md) behind its Erasure Score — the highest similarity
to the concept's name over the images of the name and of every Diverse-Inversion embedding — and its control
task: the mean similarity of images drawn from fixed control prompts to their own prompt (`PromptSimilarity`;
the paper's six, config evaluation.control_task). Config block `evaluation.erasure_score.clip`; weights at its
`weights` path, else open_clip's file in the Hugging Face cache, offline."""
from __future__ import annotations

import torch

from ..hashing import file_sha256
from .open_clip_model import class_prompts, encode_images, encode_texts, load_model, weights_file

KEY = "evaluation.erasure_score.clip"


class ClipSimilarity:
    def __init__(self, weights: str, model: str, pretrained: str, template: str, class_names: dict):
        if not class_names:
            raise ValueError("CLIP similarity needs the config's classes (name -> id) to name each image's class")
        self.model = load_model(weights, model, pretrained)
        self.ids = torch.tensor(list(class_names.values()))
        self.text = encode_texts(self.model, model, class_prompts(template, class_names))
        self.fingerprint = fingerprint(weights, model, pretrained, f"{len(class_names)} config classes as '{template}'",
                                       "cosine similarity of image and intended class prompt")

    def similarity(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """(N,) cosine similarity of each image's CLIP embedding to its intended class's prompt."""
        unknown = set(labels.tolist()) - set(self.ids.tolist())
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among the config's class ids; CLIP similarity names only the config's classes")
        column = (labels.long()[:, None] == self.ids[None]).float().argmax(1)
        return (encode_images(self.model, images, batch_size) * self.text[column]).sum(1)


class PromptSimilarity:
    """Each image's CLIP similarity to the prompt it was drawn from (free text: no class, no template)."""

    def __init__(self, weights: str, model: str, pretrained: str):
        self.model, self.arch = load_model(weights, model, pretrained), model
        self.fingerprint = fingerprint(weights, model, pretrained, "each image's own prompt", "cosine similarity of image and its prompt")

    def similarity(self, images: torch.Tensor, prompts: list[str], batch_size: int = 32) -> torch.Tensor:
        """(N,) cosine similarity of image i's CLIP embedding to prompts[i]'s (each distinct prompt encoded once)."""
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts: each image needs the prompt it was drawn from")
        distinct = list(dict.fromkeys(prompts))
        text = encode_texts(self.model, self.arch, distinct)
        column = torch.tensor([distinct.index(p) for p in prompts])
        return (encode_images(self.model, images, batch_size) * text[column]).sum(1)


def fingerprint(weights: str, model: str, pretrained: str, classes: str, rule: str) -> dict:
    return dict(name=f"CLIP similarity {model}", weights=str(weights), weights_tag=f"open_clip {model} {pretrained}",
                sha256=file_sha256(weights), threshold=None, classes=classes, rule=rule)


def for_erasure_score(block: dict | None, class_names: dict) -> ClipSimilarity | None:
    """The scorer the block evaluation.erasure_score asks for: CLIP similarity, or None when the score is the evaluator's
    probability."""
    return load(block["clip"], class_names) if (block or {}).get("score") == "clip-similarity" else None


def load(settings: dict, class_names: dict, weights: str | None = None) -> ClipSimilarity:
    """`settings`: the block `evaluation.erasure_score.clip` (model, pretrained, weights, template)."""
    return ClipSimilarity(weights_file(settings, weights, KEY), settings["model"], settings["pretrained"], settings["template"], class_names)


def load_prompt_similarity(settings: dict, weights: str | None = None) -> PromptSimilarity:
    """`settings`: the block `evaluation.erasure_score.clip` (the control task uses the Erasure Score's CLIP, as the paper)."""
    return PromptSimilarity(weights_file(settings, weights, KEY), settings["model"], settings["pretrained"])
