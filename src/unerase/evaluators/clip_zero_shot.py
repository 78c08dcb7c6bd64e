"""CLIP zero-shot classification (protocols.md, "art style": open_clip ViT-L-14 `laion2b_s32b_b82k`, as CCE):
each image goes to the config class whose prompt (`evaluation.clip.template` around the class name) its
embedding is most similar to; the probability is the softmax over the classes of CLIP's scaled cosine
similarities. Weights: `evaluation.clip.weights`, else open_clip's file in the Hugging Face cache, offline."""
from __future__ import annotations

import torch

from ..hashing import file_sha256
from .base import Scores
from .open_clip_model import class_prompts, encode_images, encode_texts, load_model, weights_file


class ClipZeroShot:
    def __init__(self, weights: str, model: str, pretrained: str, template: str, class_names: dict, min_confidence: float):
        if not class_names:
            raise ValueError("CLIP zero-shot needs the config's classes (name -> id) to name its prompts")
        self.model = load_model(weights, model, pretrained)
        self.ids = torch.tensor(list(class_names.values()))
        prompts = class_prompts(template, class_names)
        self.text = encode_texts(self.model, model, prompts)
        self.min_confidence = min_confidence
        self.fingerprint = dict(name=f"CLIP zero-shot {model}", weights=str(weights), weights_tag=f"open_clip {model} {pretrained}",
                                sha256=file_sha256(weights), threshold=min_confidence,
                                classes=f"{len(prompts)} config classes as '{template}'", rule="top-1 cosine similarity == intended class")

    def score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> Scores:
        unknown = set(labels.tolist()) - set(self.ids.tolist())
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among the config's class ids; CLIP scores only the config's classes")
        with torch.no_grad():
            probs = (self.model.logit_scale.exp() * encode_images(self.model, images, batch_size) @ self.text.T).softmax(1)
        conf, column = probs.max(1)
        intended = (labels.long()[:, None] == self.ids[None]).float().argmax(1)
        predicted = self.ids[column]
        return Scores(predicted=predicted, probability=probs.gather(1, intended[:, None])[:, 0],
                      hit=(predicted == labels) & (conf >= self.min_confidence))


def load(settings: dict, weights: str | None = None) -> ClipZeroShot:
    settings = {"model": "ViT-L-14", "pretrained": "laion2b_s32b_b82k", **settings}
    path = weights_file(settings, weights, "evaluation.clip")
    return ClipZeroShot(path, settings["model"], settings["pretrained"], settings.get("template", "{}"), settings.get("class_names", {}),
                        settings.get("min_confidence", 0.0))
