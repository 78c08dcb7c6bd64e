"""ResNet-50 ImageNet top-1 (protocols.md, "object classifier"): torchvision's architecture with a
torchvision weights file, looked up at `evaluation.resnet50.weights` or in torch's hub cache, offline.
Class ids are ImageNet indices (config/sd14.yaml: the Imagenette classes)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..evaluation import file_sha256
from .base import Scores, existing

# torchvision's published files for models.resnet50 (their names carry the hash prefix torchvision checks).
TORCHVISION_FILES = {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"}


def default_path(tag: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[tag]


class ResNet50:
    def __init__(self, weights: str, tag: str, min_confidence: float):
        import torchvision

        self.model = torchvision.models.resnet50()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - truncated file, wrong architecture, not a state dict
            raise ValueError(f"{weights}: not a torchvision ResNet-50 state dict ({type(err).__name__}: {str(err)[:120]})") from None
        self.model.eval()
        self.min_confidence = min_confidence
        # the file's own evaluation transform, as ESD's eval-scripts/imageclassify.py applies its weights' (it uses
        # DEFAULT = V2; sd14 ships V1, torchvision's pretrained=True): the shorter side to 256 for V1 / 232 for V2, then
        # the centre 224 crop (squeezing the whole image to 224 differs)
        self.transform = getattr(torchvision.models.ResNet50_Weights, tag).transforms()
        self.fingerprint = dict(name="ResNet-50 ImageNet top-1", weights=str(weights), weights_tag=f"torchvision {tag}",
                                sha256=file_sha256(str(weights)), threshold=min_confidence, classes="ImageNet-1k indices",
                                rule="top-1 == intended ImageNet index",
                                preprocess=f"torchvision {tag} transforms: shorter side {self.transform.resize_size[0]}, "
                                           f"centre crop {self.transform.crop_size[0]}")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the normalised input torchvision's weights expect."""
        return self.transform(images)

    def score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> Scores:
        if images.shape[1] != 3:
            raise ValueError(f"ResNet-50 scores RGB images, not {images.shape[1]}-channel ones; the embedded model uses evaluator digit-cnn")
        with torch.no_grad():
            probs = torch.cat([self.model(self.preprocess(images[i:i + batch_size])).softmax(1) for i in range(0, len(images), batch_size)])
        conf, pred = probs.max(1)
        return Scores(predicted=pred, probability=probs.gather(1, labels.long()[:, None])[:, 0],
                      hit=(pred == labels) & (conf >= self.min_confidence))


def load(settings: dict, weights: str | None = None) -> ResNet50:
    tag = settings.get("tag", "IMAGENET1K_V1")
    if tag not in TORCHVISION_FILES:
        raise ValueError(f"config key 'evaluation.resnet50.tag': '{tag}' is not one of {', '.join(TORCHVISION_FILES)}")
    path = weights or settings.get("weights") or default_path(tag)
    how = (f"download {TORCHVISION_FILES[tag]} on a machine with internet (python -c \"import torchvision; "
           f"torchvision.models.resnet50(weights='{tag}')\" puts it in {default_path(tag).parent}) and copy it there, "
           f"or set evaluation.resnet50.weights to the file")
    return ResNet50(existing(path, "ResNet-50", how), tag, settings.get("min_confidence", 0.0))
