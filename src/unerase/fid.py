"""Fréchet distance between two sets of image features (Heusel et al. 2017), as pytorch-fid computes it:
||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). On the digits model the features are the digit
CNN's penultimate layer (issue #9: a quality metric in the default run); Inception features need a
reference set of photographs that this workflow does not ship."""
from __future__ import annotations

import numpy as np
from scipy import linalg


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features (an array or a CPU tensor)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"Fréchet distance needs at least two feature vectors (N, D), not shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    w, v = linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Tr((S_a S_b)^(1/2)) as the trace of the square root of the symmetric S_a^(1/2) S_b S_a^(1/2), which has the same
    eigenvalues: exact and warning-free where few images make the covariances singular (pytorch-fid adds an offset)."""
    diff = mu_a - mu_b
    root = _sqrt_psd(sigma_a)
    inner = linalg.eigvalsh(root @ sigma_b @ root)
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def fid(features_a, features_b) -> float:
    return frechet_distance(*statistics(features_a), *statistics(features_b))
