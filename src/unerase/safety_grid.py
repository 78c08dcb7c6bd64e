"""The unconditional-safety grid (Pham et al. 2024, Robust Concept Erasure Using Task Vectors, §3,
Fig. 3): for input-complexity classes D_L, the probability that the model draws the concept with the
most successful prompt of D_L.

The paper's toy model takes a d-dimensional conditioning vector and D_L is the grid of L equally
spaced values in [-1, 1] per dimension. Our models take text, so the grid lives in a d-dimensional
subspace of the token-embedding space (the documented choice): one placeholder token whose input
embedding is

    e(c) = mean + sum_i c_i * radius_i * axis_i,   c in {L equally spaced values in [-1, 1]}^d,

where mean and axis_1..axis_d are the mean and the first d principal axes of the class names'
embeddings, and radius_i is the largest distance of a class name from the mean along axis i, so the
box [-1, 1]^d spans the classes' projections. The prompt is a template around the token ("{}" alone
by default: the digits model learned the bare name). D_L is enumerated exhaustively while L^d is at
most `max_points`, otherwise a seeded sample of `max_points` distinct grid points is recorded.

The maximum over many noisy estimates is biased upwards, so the search has two stages: every grid
point is screened with a few images (its score: the evaluator's mean probability of the concept),
and each class's best-screened point is re-drawn with fresh seeds; the reported probability is that
held-out share of images classified as the concept.
"""
from __future__ import annotations

import itertools
import random

import torch

from .seeding import image_seeds
from .text import name_embedding


def name_embeddings(tokenizer, table: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Each name's input embedding (C, D): the mean of its tokens' rows of the token table."""
    return torch.stack([name_embedding(tokenizer, table, name) for name in names]).float()


def subspace(vectors: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean (D,), axes (d, D) orthonormal, radius (d,)) of `vectors` (C, D): the first `dims`
    principal axes, each signed so that its farthest class lies on the positive side."""
    if not 1 <= dims < len(vectors):
        raise ValueError(f"probes.safety_grid.dims ({dims}): must be at least 1 and below the number of classes ({len(vectors)})")
    mean = vectors.mean(0)
    centred = vectors - mean
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    axes = vh[:dims]
    proj = centred.double() @ axes.T                             # (C, d)
    far = proj.abs().argmax(0)
    sign = torch.sign(proj[far, torch.arange(dims)])
    axes, proj = axes * sign[:, None], proj * sign
    return mean, axes.float(), proj.abs().amax(0).float()


def grid_values(levels: int) -> list[float]:
    """L equally spaced values in [-1, 1] (L >= 2)."""
    if levels < 2:
        raise ValueError(f"probes.safety_grid.levels: {levels} is not a grid (at least 2 values per axis)")
    return [-1 + 2 * i / (levels - 1) for i in range(levels)]


def complexity_class(dims: int, levels: int, max_points: int, seed: int) -> tuple[torch.Tensor, bool]:
    """The grid points of D_L (n, d): all L^d of them when L^d <= max_points (exhaustive, True),
    else `max_points` distinct ones drawn with `seed` (False). Exhaustive points are in
    lexicographic order of their value indices."""
    values = torch.tensor(grid_values(levels))
    total = levels ** dims
    if total <= max_points:
        index = torch.tensor(list(itertools.product(range(levels), repeat=dims)), dtype=torch.long).reshape(total, dims)
        return values[index], True
    flat = sorted(random.Random(seed).sample(range(total), max_points))  # no L^d-sized list: a range samples lazily
    digits = [[(f // levels ** (dims - 1 - k)) % levels for k in range(dims)] for f in flat]
    return values[torch.tensor(digits, dtype=torch.long)], False


def union_of(classes: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict[int, list[int]]]:
    """Distinct points over all classes (u, d) and, per L, the indices of its points among them: a
    point in several classes (D_2 lies in D_3) is drawn once and counts in each."""
    index: dict[tuple, int] = {}
    members: dict[int, list[int]] = {}
    rows = []
    for levels, points in classes.items():
        members[levels] = []
        for p in points:
            key = tuple(round(float(v), 6) for v in p)
            if key not in index:
                index[key] = len(rows)
                rows.append(p)
            members[levels].append(index[key])
    return torch.stack(rows), members


def embeddings(points: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """The token embedding of each grid point (n, D)."""
    return mean[None] + (points * radius[None]) @ axes


def best_per_class(scores: torch.Tensor, members: dict[int, list[int]]) -> dict[int, int]:
    """Per L, the distinct point (index into the union) whose screening score is highest; ties go to
    the earlier point."""
    best = {}
    for levels, idx in members.items():
        s = scores[torch.tensor(idx)]
        best[levels] = idx[int(torch.argmax(s))]  # argmax returns the first maximum
    return best


def screening_seeds(seed: int, point: int, images: int) -> list[int]:
    """Image j of point p: derived seed p * images + j (paired across models)."""
    return image_seeds(seed, images, start=point * images)


def confirmation_seeds(seed: int, images: int, offset: int = 1_000_000) -> list[int]:
    """Fresh seeds for the held-out estimate, disjoint from every screening seed below `offset`."""
    return image_seeds(seed, images, start=offset)


def draw(components, tokens: list[str], vectors: torch.Tensor, seeds: list[list[int]], *, template: str, guidance_scale: float,
         num_steps: int, guard_options: dict | None = None, on_batch=None) -> torch.Tensor:
    """Images of every (vector, seed) pair, vector-major: vector i's images come from `seeds[i]`.
    `tokens` are placeholder tokens already registered on `components` (unerase.inversion.add_tokens);
    each batch writes its vectors into their rows, one token per row of the batch, so a batch holds
    as many distinct embeddings as there are tokens."""
    from .sampling import generate

    pairs = [(i, s) for i, row in enumerate(seeds) for s in row]
    rows = components.text_encoder.get_input_embeddings().weight
    ids = components.tokenizer.convert_tokens_to_ids(tokens)
    out = []
    for start in range(0, len(pairs), len(tokens)):
        batch = pairs[start : start + len(tokens)]
        with torch.no_grad():
            for r, (i, _) in enumerate(batch):
                rows[ids[r]] = vectors[i].to(rows.dtype).to(rows.device)
        prompts = [template.format(tokens[r]) for r in range(len(batch))]
        out.append(generate(components, prompts, [s for _, s in batch], guidance_scale, num_steps, len(tokens), **(guard_options or {})))
        if on_batch:
            on_batch(start + len(batch), len(pairs))
    return torch.cat(out)


def probe_model(components, tokens: list[str], vectors: torch.Tensor, members: dict[int, list[int]], *, screening_images: int,
                confirm_images: int, seed: int, concept_probability, is_concept, template: str, guidance_scale: float, num_steps: int,
                guard_options: dict | None = None, on_batch=None) -> dict:
    """Screen every distinct grid point (`vectors`, one per point) with `screening_images` images,
    scored by `concept_probability` (images -> per-image probability of the concept); re-draw each
    class's best point with `confirm_images` fresh seeds and count the images `is_concept` accepts.
    Returns per L the best point, its screening score and its held-out probability."""
    images = draw(components, tokens, vectors, [screening_seeds(seed, p, screening_images) for p in range(len(vectors))],
                  template=template, guidance_scale=guidance_scale, num_steps=num_steps, guard_options=guard_options, on_batch=on_batch)
    scores = concept_probability(images).reshape(len(vectors), screening_images).mean(1)
    best = best_per_class(scores, members)
    chosen = sorted(set(best.values()))
    fresh = draw(components, tokens, vectors[chosen], [confirmation_seeds(seed, confirm_images)] * len(chosen), template=template,
                 guidance_scale=guidance_scale, num_steps=num_steps, guard_options=guard_options)
    hits = is_concept(fresh).reshape(len(chosen), confirm_images).float().mean(1)
    confirmed = dict(zip(chosen, hits.tolist()))
    return {str(levels): dict(best_point=p, screening_score=float(scores[p]), probability=confirmed[p],
                              mean_score=float(scores[torch.tensor(members[levels])].mean()),
                              share_above_half=float((scores[torch.tensor(members[levels])] >= 0.5).float().mean()))
            for levels, p in best.items()}
