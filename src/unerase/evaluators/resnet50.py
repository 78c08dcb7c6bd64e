"""ResNet-50 ImageNet top-1 (protocols.md, "object classifier"), in the two forms the field uses, recorded which
(`evaluation.resnet50.tag`): torchvision's architecture with a torchvision weights file (ESD, UCE: tags IMAGENET1K_V1/V2),
or `microsoft/resnet-50` through transformers with its own image processor (UnlearnDiffAtk, Memories). Weights are looked
up at `evaluation.resnet50.weights` (a file; for microsoft/resnet-50 its folder) or in the standard cache (torch's hub,
Hugging Face's), offline. Class ids are ImageNet indices (config/sd14.yaml: the Imagenette classes)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..evaluation import file_sha256
from .base import Scores, existing

# torchvision's published files for models.resnet50 (their names carry the hash prefix torchvision checks).
TORCHVISION_FILES = {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"}


HF_TAG = "microsoft/resnet-50"
HF_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def default_path(tag: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[tag]


def fingerprint(weights, weights_tag: str, threshold: float, preprocess: str) -> dict:
    """What every metric row records of a ResNet-50, in either form."""
    return dict(name="ResNet-50 ImageNet top-1", weights=str(weights), weights_tag=weights_tag, sha256=file_sha256(str(weights)),
                threshold=threshold, classes="ImageNet-1k indices", rule="top-1 == intended ImageNet index", preprocess=preprocess)


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
        self.fingerprint = fingerprint(weights, f"torchvision {tag}", min_confidence,
                                       f"torchvision {tag} transforms: shorter side {self.transform.resize_size[0]}, "
                                       f"centre crop {self.transform.crop_size[0]}")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the normalised input torchvision's weights expect."""
        return self.transform(images)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images))

    def score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> Scores:
        if images.shape[1] != 3:
            raise ValueError(f"ResNet-50 scores RGB images, not {images.shape[1]}-channel ones; the embedded model uses evaluator digit-cnn")
        with torch.no_grad():
            probs = torch.cat([self.logits(images[i:i + batch_size]).softmax(1) for i in range(0, len(images), batch_size)])
        conf, pred = probs.max(1)
        return Scores(predicted=pred, probability=probs.gather(1, labels.long()[:, None])[:, 0],
                      hit=(pred == labels) & (conf >= self.min_confidence))


class HubResNet50(ResNet50):
    """microsoft/resnet-50 as UnlearnDiffAtk and Memories load it: transformers' ResNetForImageClassification from a
    local folder of the hub repository (config.json, model.safetensors — safetensors only, never a pickle — and
    preprocessor_config.json), each image through the folder's own image processor on its PIL backend (ConvNext's:
    shorter side 224 / 0.875 = 256, bicubic, centre crop 224), top-1 of its 1,000 ImageNet logits."""

    def __init__(self, folder: Path, min_confidence: float):
        import transformers
        from transformers import AutoImageProcessor, ResNetForImageClassification

        weights = folder / "model.safetensors"
        try:
            self.model = ResNetForImageClassification.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
            # the PIL backend: transformers 4's ConvNextImageProcessor, as UnlearnDiffAtk and Memories ran it (5's default,
            # torchvision, resizes bicubic slightly differently)
            self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, backend="pil")
        except Exception as err:  # noqa: BLE001 - truncated safetensors, foreign config, no processor
            raise ValueError(f"{folder}: not a transformers ResNet-50 folder ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
        if self.model.config.num_labels != 1000:
            raise ValueError(f"{folder}: a classifier of {self.model.config.num_labels} classes, not ImageNet's 1,000")
        self.min_confidence = min_confidence
        p = self.processor
        size = p.size.get("shortest_edge", p.size.get("height"))
        self.fingerprint = fingerprint(weights, f"{HF_TAG} (transformers)", min_confidence,
                                       f"{type(p).__name__} (transformers {transformers.__version__}): shortest edge {size}, "
                                       f"crop_pct {getattr(p, 'crop_pct', None)}")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=self.preprocess(images)).logits


def hub_folder(weights: str | None) -> Path:
    """The folder holding microsoft/resnet-50's files: `weights`, or its snapshot in the Hugging Face cache."""
    how = (f"on a machine with internet run `huggingface-cli download {HF_TAG} {' '.join(HF_FILES)} --local-dir DIR`, copy DIR here "
           "and set evaluation.resnet50.weights to it (or copy the Hugging Face cache)")
    if weights:
        folder = Path(weights)
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(HF_TAG, "model.safetensors")
        folder = Path(cached).parent if isinstance(cached, str) else Path("~/.cache/huggingface/hub").expanduser() / "models--microsoft--resnet-50"
    for name in HF_FILES:
        existing(folder / name, HF_TAG, how)
    return folder


def load(settings: dict, weights: str | None = None) -> ResNet50:
    tag = settings.get("tag", "IMAGENET1K_V1")
    if tag == HF_TAG:
        return HubResNet50(hub_folder(weights or settings.get("weights")), settings.get("min_confidence", 0.0))
    if tag not in TORCHVISION_FILES:
        raise ValueError(f"config key 'evaluation.resnet50.tag': '{tag}' is not one of {', '.join([*TORCHVISION_FILES, HF_TAG])}")
    path = weights or settings.get("weights") or default_path(tag)
    how = (f"download {TORCHVISION_FILES[tag]} on a machine with internet (python -c \"import torchvision; "
           f"torchvision.models.resnet50(weights='{tag}')\" puts it in {default_path(tag).parent}) and copy it there, "
           f"or set evaluation.resnet50.weights to the file")
    return ResNet50(existing(path, "ResNet-50", how), tag, settings.get("min_confidence", 0.0))
