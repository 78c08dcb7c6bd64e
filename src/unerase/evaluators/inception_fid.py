"""FID on photographs: pytorch-fid's Inception-v3 (the TensorFlow FID network, weights
pt_inception-2015-12-05-6726825d.pth) and its 2048-d pool features, against a reference set given as a folder
of images or as pytorch-fid statistics (`python -m pytorch_fid --save-stats` writes an .npz of mu and sigma:
the way to reuse a COCO-30k reference without re-encoding it in every job). Config block `evaluation.fid`;
weights at its `weights` path, else torch's hub cache where pytorch-fid itself puts them, offline."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..hashing import file_sha256
from .base import existing

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
DIMS = 2048
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def default_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


@contextmanager
def _weights_from(state: dict):
    """pytorch-fid builds its network only through load_state_dict_from_url (its release URL or torch's hub cache);
    hand it the state read here (weights_only) so that an explicit path works offline."""
    from pytorch_fid import inception

    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield inception
    finally:
        inception.load_state_dict_from_url = original


class InceptionFeatures:
    def __init__(self, weights: str):
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            with _weights_from(state) as inception:
                self.net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]]).eval()
        except Exception as err:  # noqa: BLE001 - truncated file, another network's tensors
            raise ValueError(f"{weights}: not pytorch-fid's Inception-v3 weights ({type(err).__name__}: {str(err)[:120]})") from None
        sha256 = file_sha256(weights)
        # pytorch-fid's file names carry their hash's first 8 hex digits; any other file is recorded as such
        tag = WEIGHTS_FILE if sha256.startswith(WEIGHTS_FILE.rsplit("-", 1)[1][:8]) else f"custom Inception-v3 weights ({Path(weights).name})"
        self.fingerprint = dict(name="Inception-v3 pool3 (pytorch-fid 0.3.0)", weights=str(weights), weights_tag=tag, sha256=sha256, dims=DIMS)

    def features(self, images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
        """uint8 (N, C, H, W) -> (N, 2048) float64 (pytorch-fid resizes to 299 bilinearly and scales to [-1, 1] itself)."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        with torch.no_grad():
            out = [self.net(images[i:i + batch_size].float() / 255)[0].flatten(1) for i in range(0, len(images), batch_size)]
        return torch.cat(out).double().numpy()

    def reference_statistics(self, path: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(mu, sigma, description) of the reference set at `path`: pytorch-fid's .npz statistics or a folder of images."""
        ref = Path(path)
        if ref.suffix == ".npz" and ref.is_file():
            try:
                with np.load(ref, allow_pickle=False) as stats:
                    mu, sigma = stats["mu"].astype(np.float64), stats["sigma"].astype(np.float64)
            except Exception as err:  # noqa: BLE001 - truncated archive, missing arrays
                raise ValueError(f"{ref}: not pytorch-fid statistics (an .npz with mu and sigma; {type(err).__name__}: {str(err)[:80]})") from None
            if mu.shape != (DIMS,) or sigma.shape != (DIMS, DIMS):
                raise ValueError(f"{ref}: statistics of shape mu {mu.shape}, sigma {sigma.shape}; Inception pool3 FID needs ({DIMS},) and "
                                 f"({DIMS}, {DIMS})")
            return mu, sigma, f"pytorch-fid statistics {ref.name} (sha256 {file_sha256(ref)[:12]})"
        if ref.is_dir():
            from ..fid import statistics

            files = sorted(p for p in ref.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if len(files) < 2:
                raise ValueError(f"evaluation.fid.reference: {ref} holds {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); FID needs at least 2")
            feats = np.concatenate([self.features(read_rgb(p)) for p in files])
            return *statistics(feats), f"{len(files)} images in {ref}"
        raise FileNotFoundError(f"evaluation.fid.reference: {ref} is neither a folder of images nor a pytorch-fid .npz statistics file; "
                                "point it at real photographs (e.g. COCO val2014 captions' images) or their --save-stats file")


def read_rgb(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]


def load(settings: dict) -> InceptionFeatures:
    """`settings`: the block `evaluation.fid` (features inception, weights, reference)."""
    path = settings.get("weights") or default_path()
    how = (f"download {WEIGHTS_FILE} on a machine with internet (pytorch-fid's release: python -c \"from pytorch_fid.inception import "
           f"fid_inception_v3; fid_inception_v3()\" puts it in {default_path().parent}) and copy it there, or set evaluation.fid.weights")
    return InceptionFeatures(existing(path, "Inception-v3 (FID)", how))
