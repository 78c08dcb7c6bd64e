"""CLIP similarity between each image and the name of its intended class: the Task-Vector paper's measure
(§5.1: CLIP ViT-B/32 pre-trained on LAION-2B; protocols.md) behind its Erasure Score — the highest similarity
to the concept's name over the images of the name and of every Diverse-Inversion embedding — and its control
task (the mean similarity of control images to their class names, through the same template). Config block
`evaluation.erasure_score.clip`; weights at its `weights` path, else open_clip's file in the Hugging Face cache,
offline."""
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
        self.fingerprint = dict(name=f"CLIP similarity {model}", weights=str(weights), weights_tag=f"open_clip {model} {pretrained}",
                                sha256=file_sha256(weights), threshold=None,
                                classes=f"{len(class_names)} config classes as '{template}'",
                                rule="cosine similarity of image and intended class prompt")

    def similarity(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """(N,) cosine similarity of each image's CLIP embedding to its intended class's prompt."""
        unknown = set(labels.tolist()) - set(self.ids.tolist())
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among the config's class ids; CLIP similarity names only the config's classes")
        column = (labels.long()[:, None] == self.ids[None]).float().argmax(1)
        return (encode_images(self.model, images, batch_size) * self.text[column]).sum(1)


def for_erasure_score(block: dict | None, class_names: dict) -> ClipSimilarity | None:
    """The scorer the block evaluation.erasure_score asks for: CLIP similarity, or None when the score is the evaluator's
    probability."""
    return load(block["clip"], class_names) if (block or {}).get("score") == "clip-similarity" else None


def load(settings: dict, class_names: dict, weights: str | None = None) -> ClipSimilarity:
    """`settings`: the block `evaluation.erasure_score.clip` (model, pretrained, weights, template)."""
    return ClipSimilarity(weights_file(settings, weights, KEY), settings["model"], settings["pretrained"], settings["template"], class_names)
