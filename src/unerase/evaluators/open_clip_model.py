"""What the CLIP evaluators share: open_clip weights found at an explicit path or in the Hugging Face cache
(offline), loaded strictly into the named architecture, and the model's own preprocessing applied to uint8
image tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import EvaluatorWeightsMissing, existing

# open_clip's file names on the hub, in the order open_clip itself prefers them
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hub_repo(model: str, pretrained: str) -> str | None:
    import open_clip

    return (open_clip.get_pretrained_cfg(model, pretrained) or {}).get("hf_hub", "").strip("/") or None


def cached_weights(model: str, pretrained: str, key: str = "evaluation.clip") -> str:
    """The weights file of (model, pretrained) in the Hugging Face cache, or the one-line error saying how to get it;
    `key` is the config block that names them."""
    from huggingface_hub import try_to_load_from_cache

    repo = hub_repo(model, pretrained)
    if repo is None:
        raise ValueError(f"config keys '{key}.model/pretrained': open_clip knows no hub weights for {model} {pretrained}; "
                         f"set {key}.weights to a file")
    for name in HUB_FILES:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found
    raise EvaluatorWeightsMissing(f"CLIP weights not found in the Hugging Face cache for {repo}: run huggingface-cli download {repo} "
                                  f"{HUB_FILES[0]} on a machine with internet and copy the cache here, or set {key}.weights")


def weights_file(settings: dict, weights: str | None, key: str) -> str:
    """`weights`, else the block's `weights`, else open_clip's file in the Hugging Face cache."""
    path = weights or settings.get("weights")
    if path:
        return existing(path, "CLIP", f"set {key}.weights to open_clip's weights file")
    return cached_weights(settings["model"], settings["pretrained"], key)


def uses_quick_gelu(model: str, pretrained: str) -> bool:
    """Whether (model, pretrained) was trained with QuickGELU (OpenAI's weights): the architecture config alone does not
    say, the pretrained tag does, and the tensors load either way — a silent mismatch if it were left out."""
    import open_clip

    return bool((open_clip.get_pretrained_cfg(model, pretrained) or {}).get("quick_gelu"))


def load_model(weights: str, model: str, pretrained: str | None = None):
    """open_clip `model` with `weights`, strictly (a truncated file or another architecture's tensors: one line), with the
    activation its `pretrained` tag was trained with."""
    import open_clip

    net = open_clip.create_model(model, pretrained=None, force_quick_gelu=uses_quick_gelu(model, pretrained) if pretrained else False)
    try:
        open_clip.load_checkpoint(net, weights, strict=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated file, another architecture's tensors
        raise ValueError(f"{weights}: not open_clip {model} weights ({type(err).__name__}: {str(err)[:120]})") from None
    return net.eval()


def encode_texts(net, model: str, prompts: list[str]) -> torch.Tensor:
    """Unit-norm text embeddings of `prompts`."""
    import open_clip

    with torch.no_grad():
        return F.normalize(net.encode_text(open_clip.get_tokenizer(model)(prompts)), dim=-1)


def preprocess(images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """uint8 (N, C, H, W) -> the square, normalised input of open_clip's preprocess config `cfg` (shortest side to the
    model's size, bicubic with antialiasing, centre crop), as open_clip's own transform does on PIL images."""
    size = cfg["size"]
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
    mean, std = (torch.tensor(cfg[k])[:, None, None] for k in ("mean", "std"))
    return (x - mean) / std


def encode_images(net, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Unit-norm image embeddings of uint8 `images`, in batches."""
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(net)
    with torch.no_grad():
        return torch.cat([F.normalize(net.encode_image(preprocess(images[i:i + batch_size], cfg)), dim=-1)
                          for i in range(0, len(images), batch_size)])


def class_prompts(template: str, class_names: dict) -> list[str]:
    """The prompt of each config class (name -> id), in the config's order; underscores in names become spaces."""
    return [template.format(name.replace("_", " ")) for name in class_names]
