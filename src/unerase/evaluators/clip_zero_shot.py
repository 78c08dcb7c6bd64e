"""CLIP zero-shot classification (protocols.md, "art style": open_clip ViT-L-14 `laion2b_s32b_b82k`, as CCE):
each image goes to the config class whose prompt (`evaluation.clip.template` around the class name) its
embedding is most similar to; the probability is the softmax over the classes of CLIP's scaled cosine
similarities. Weights: `evaluation.clip.weights`, else open_clip's file in the Hugging Face cache, offline."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..hashing import file_sha256
from .base import EvaluatorWeightsMissing, Scores, existing

# open_clip's file names on the hub, in the order open_clip itself prefers them
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hub_repo(model: str, pretrained: str) -> str | None:
    import open_clip

    return (open_clip.get_pretrained_cfg(model, pretrained) or {}).get("hf_hub", "").strip("/") or None


def cached_weights(model: str, pretrained: str) -> str:
    """The weights file of (model, pretrained) in the Hugging Face cache, or the one-line error saying how to get it."""
    from huggingface_hub import try_to_load_from_cache

    repo = hub_repo(model, pretrained)
    if repo is None:
        raise ValueError(f"config keys 'evaluation.clip.model/pretrained': open_clip knows no hub weights for {model} {pretrained}; "
                         "set evaluation.clip.weights to a file")
    for name in HUB_FILES:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found
    raise EvaluatorWeightsMissing(f"CLIP weights not found in the Hugging Face cache for {repo}: run huggingface-cli download {repo} "
                                  f"{HUB_FILES[0]} on a machine with internet and copy the cache here, or set evaluation.clip.weights")


class ClipZeroShot:
    def __init__(self, weights: str, model: str, pretrained: str, template: str, class_names: dict, min_confidence: float):
        import open_clip

        if not class_names:
            raise ValueError("CLIP zero-shot needs the config's classes (name -> id) to name its prompts")
        self.model = open_clip.create_model(model, pretrained=None)
        try:
            open_clip.load_checkpoint(self.model, weights, strict=True, weights_only=True)
        except Exception as err:  # noqa: BLE001 - truncated file, another architecture's tensors
            raise ValueError(f"{weights}: not open_clip {model} weights ({type(err).__name__}: {str(err)[:120]})") from None
        self.model.eval()
        self.preprocess_cfg = open_clip.get_model_preprocess_cfg(self.model)
        self.ids = torch.tensor(list(class_names.values()))
        prompts = [template.format(name.replace("_", " ")) for name in class_names]
        with torch.no_grad():
            self.text = F.normalize(self.model.encode_text(open_clip.get_tokenizer(model)(prompts)), dim=-1)
        self.min_confidence = min_confidence
        self.fingerprint = dict(name=f"CLIP zero-shot {model}", weights=str(weights), weights_tag=f"open_clip {model} {pretrained}",
                                sha256=file_sha256(weights), threshold=min_confidence,
                                classes=f"{len(prompts)} config classes as '{template}'", rule="top-1 cosine similarity == intended class")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the square, normalised input of the model's preprocess config (shortest side, centre crop)."""
        size = self.preprocess_cfg["size"]
        size = size if isinstance(size, int) else size[0]
        x = images.float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size]
        mean, std = (torch.tensor(self.preprocess_cfg[k])[:, None, None] for k in ("mean", "std"))
        return (x - mean) / std

    def score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> Scores:
        unknown = set(labels.tolist()) - set(self.ids.tolist())
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among the config's class ids; CLIP scores only the config's classes")
        with torch.no_grad():
            feats = torch.cat([F.normalize(self.model.encode_image(self.preprocess(images[i:i + batch_size])), dim=-1)
                               for i in range(0, len(images), batch_size)])
            probs = (self.model.logit_scale.exp() * feats @ self.text.T).softmax(1)
        conf, column = probs.max(1)
        intended = (labels.long()[:, None] == self.ids[None]).float().argmax(1)
        predicted = self.ids[column]
        return Scores(predicted=predicted, probability=probs.gather(1, intended[:, None])[:, 0],
                      hit=(predicted == labels) & (conf >= self.min_confidence))


def load(settings: dict, weights: str | None = None) -> ClipZeroShot:
    model, pretrained = settings.get("model", "ViT-L-14"), settings.get("pretrained", "laion2b_s32b_b82k")
    path = weights or settings.get("weights")
    path = existing(path, "CLIP", "set evaluation.clip.weights to open_clip's weights file") if path else cached_weights(model, pretrained)
    return ClipZeroShot(path, model, pretrained, settings.get("template", "{}"), settings.get("class_names", {}),
                        settings.get("min_confidence", 0.0))
