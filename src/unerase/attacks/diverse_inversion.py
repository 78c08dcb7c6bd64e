"""Diverse Inversion (Pham et al. 2024, Robust Concept Erasure Using Task Vectors, §4.1, Eq. 4).

n single-token embeddings, each learned by textual inversion to make the model draw the concept,
optimised in parallel in one batch (embedding k owns `batch_per_embedding` rows of it), under two
constraints:
- band: the cosine similarity of embedding k to the concept name's embedding stays in its band
  [a_k, b_k] (the bands are spread evenly over the n embeddings: default 5 non-overlapping bands);
  enforced exactly by projecting onto the band after every step (norm kept);
- diversity: the pairwise similarity of the embeddings stays below a bound; a hinge penalty
  pushes pairs apart while training, and the kept set drops, greedily by loss, any embedding still
  above the bound with a better one.
Each embedding starts at a random point of its band (the paper's random restarts) and draws its
images, noise, timesteps and captions from its own generators (derived seed k), so the batch gives each
embedding the result of its own run at one UNet call per step instead of n — exactly (tested) while
the diversity penalty is inactive (no pair above the bound, or weight 0); the penalty couples the
embeddings, as in the paper's joint objective.

Learned on the base model (the paper's "diverse safety validation set" for the original model),
then generated on every audited model; the Erasure Score (unerase.evaluation) reads its images.
"""
from __future__ import annotations

import math
import random

import torch
from safetensors.torch import save_file

from ..atomic import atomic_path
from ..checkpoint import Checkpointer, pyrng_from_tensor, pyrng_to_tensor
from ..diffusion import LatentBank, add_noise
from ..inversion import PlaceholderEmbedding
from ..progress import Progress
from ..runtime import activation_checkpointing, training_autocast
from ..seeding import derived
from ..text import encode, name_embedding
from .job import AttackJob


def band_of(k: int, n: int, bands: list[list[float]]) -> tuple[float, float]:
    """Embedding k's band: the n embeddings lie evenly across the bands (k * B // n)."""
    low, high = bands[k * len(bands) // n]
    return float(low), float(high)


def cosine_to(vectors: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(vectors, direction[None], dim=-1)


def project_to_bands(vectors: torch.Tensor, direction: torch.Tensor, lows: torch.Tensor, highs: torch.Tensor) -> torch.Tensor:
    """Each row rotated in the plane of itself and `direction` until its cosine to `direction` lies
    in [low, high]; rows already inside are unchanged, norms are kept."""
    u = direction / direction.norm()
    along = vectors @ u
    norm = vectors.norm(dim=-1).clamp_min(1e-12)
    cos = along / norm
    target = cos.clamp(lows, highs)
    ortho = vectors - along[:, None] * u
    ortho_unit = ortho / ortho.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    moved = norm[:, None] * (target[:, None] * u + (1 - target ** 2).clamp_min(0).sqrt()[:, None] * ortho_unit)
    inside = (cos >= lows) & (cos <= highs)
    return torch.where(inside[:, None], vectors, moved)


def random_in_band(direction: torch.Tensor, low: float, high: float, norm: float, gen: torch.Generator) -> torch.Tensor:
    """A random vector of length `norm` whose cosine to `direction` is uniform in [low, high]."""
    u = direction / direction.norm()
    r = torch.randn(direction.shape, generator=gen, dtype=direction.dtype)
    ortho = r - (r @ u) * u
    c = low + (high - low) * float(torch.rand((), generator=gen))
    return norm * (c * u + math.sqrt(max(0.0, 1 - c * c)) * ortho / ortho.norm())


def pairwise_similarity(vectors: torch.Tensor) -> torch.Tensor:
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


def diversity_penalty(vectors: torch.Tensor, bound: float) -> torch.Tensor:
    """Σ_{i<j} relu(sim_ij − bound)²: zero when every pair is at most `bound` alike."""
    sim = pairwise_similarity(vectors)
    return torch.triu(torch.relu(sim - bound) ** 2, diagonal=1).sum()


def keep_diverse(similarity: torch.Tensor, losses: list[float], bound: float) -> list[int]:
    """Greedily by loss (best first), the embeddings at most `bound` alike to every one kept before."""
    kept: list[int] = []
    for k in sorted(range(len(losses)), key=lambda i: losses[i]):
        if all(float(similarity[k, j]) <= bound + 1e-6 for j in kept):
            kept.append(k)
    return sorted(kept)


def diverse_invert(components, bank: LatentBank, *, token: str, concept_text: str, templates: list[str], indices: list[int], total: int,
                   bands: list[list[float]], pairwise_max: float, diversity_weight: float, lr: float, batch_per_embedding: int,
                   steps: int, seed: int, progress: Progress | None = None, precision: str = "float32",
                   gradient_checkpointing: bool = False, checkpoint: str | None = None,
                   checkpoint_every: int = 100) -> tuple[torch.Tensor, list[float]]:
    """Learn the embeddings `indices` of a set of `total` (all of them: Diverse Inversion; one: the
    same embedding learned alone). Returns (len(indices), D) vectors and each one's mean loss over
    the last quarter of the steps. `precision` bfloat16 | float16: each step's forward under autocast;
    `gradient_checkpointing`: the UNet recomputes its activations in the backward (SD 1.4's 100 rows fit).
    `checkpoint`: a file the state is saved to every `checkpoint_every` steps, so a killed job (SD 1.4's 100
    embeddings take hours on an A100) resumes where it was and ends with the same vectors."""
    tok, encoder = components.tokenizer, components.text_encoder
    table = encoder.get_input_embeddings()
    direction = name_embedding(tok, table.weight.detach().cpu(), concept_text)
    gens = [torch.Generator().manual_seed(derived(seed, k)) for k in indices]
    rngs = [random.Random(derived(seed, k)) for k in indices]
    lows, highs = (torch.tensor([band_of(k, total, bands)[i] for k in indices]) for i in (0, 1))
    init = torch.stack([random_in_band(direction, float(lo), float(hi), float(direction.norm()), g) for lo, hi, g in zip(lows, highs, gens)])
    names = [f"{token}_{k:03d}" for k in indices]  # zero-padded: no token name is a prefix of another
    if tok.add_tokens(names) != len(names):
        raise ValueError(f"tokenizer already has tokens named like '{token}'")
    encoder.resize_token_embeddings(len(tok), mean_resizing=False)
    ids = torch.tensor(tok.convert_tokens_to_ids(names))
    table = encoder.get_input_embeddings()
    embedding = PlaceholderEmbedding(table, ids, init)
    opt = torch.optim.Adam([embedding.vectors], lr=lr)
    dev = embedding.vectors.device
    d = direction.to(dev)
    lows, highs = lows.to(dev), highs.to(dev)
    n, m = len(indices), batch_per_embedding
    tail = []
    ckpt = Checkpointer(checkpoint, dict(token=token, concept=concept_text, templates=templates, indices=indices, total=total, bands=bands,
                                         pairwise_max=pairwise_max, diversity_weight=diversity_weight, lr=lr, m=m, steps=steps, seed=seed,
                                         **({"precision": precision} if precision != "float32" else {})), checkpoint_every)
    start = 0
    if state := ckpt.load():
        with torch.no_grad():
            embedding.vectors.copy_(state["vectors"])
        opt.load_state_dict(state["opt"])
        for g, g_state in zip(gens, state["gens"], strict=True):
            g.set_state(g_state)
        for r, r_state in zip(rngs, state["rngs"], strict=True):
            r.setstate(pyrng_from_tensor(r_state))
        tail, start = list(state["tail"]), state["step"]
        if progress:
            progress.start = start  # its rate and ETA count the steps this run makes
    encoder.set_input_embeddings(embedding)
    try:
        with activation_checkpointing(components.unet, gradient_checkpointing):
            for step in range(start, steps):
                captions, latents, noises, ts = [], [], [], []
                for j in range(n):  # each embedding draws from its own generators, as it would alone
                    captions += [rngs[j].choice(templates).format(names[j]) for _ in range(m)]
                    idx = torch.randint(0, len(bank), (m,), generator=gens[j])
                    noisy, noise, t = add_noise(components.scheduler, bank.draw(idx, gens[j]), gens[j])
                    latents.append(noisy); noises.append(noise); ts.append(t)
                with training_autocast(components.device, precision):
                    context = encode(tok, encoder, captions)
                    pred = components.unet(torch.cat(latents), torch.cat(ts), encoder_hidden_states=context).sample
                per_embedding = ((pred.float() - torch.cat(noises).float()) ** 2).mean((1, 2, 3)).view(n, m).mean(1)
                loss = per_embedding.sum() + diversity_weight * diversity_penalty(embedding.vectors, pairwise_max)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    embedding.vectors.copy_(project_to_bands(embedding.vectors, d, lows, highs))
                if step >= steps - max(1, steps // 4):
                    tail.append(per_embedding.detach().cpu())
                if progress:
                    progress.update(step, float(per_embedding.detach().mean()))
                ckpt.maybe_save(step, steps, lambda: dict(vectors=embedding.vectors.detach().cpu(), opt=opt.state_dict(),
                                                          gens=[g.get_state() for g in gens], rngs=[pyrng_to_tensor(r.getstate()) for r in rngs],
                                                          tail=torch.stack(tail) if tail else torch.zeros(0, n)))
    finally:
        encoder.set_input_embeddings(table)
    ckpt.clear()
    return embedding.vectors.detach().cpu().clone(), torch.stack(tail).mean(0).tolist()


def histogram(values: list[float], edges: list[float]) -> list[int]:
    counts, _ = torch.histogram(torch.tensor(values, dtype=torch.float64), bins=torch.tensor(edges, dtype=torch.float64))
    return [int(c) for c in counts]


def run(job: AttackJob) -> dict:
    s = job.settings
    bank = LatentBank.from_image_set(job.model, job.inputs["concept_images"])
    n = s["num_embeddings"]
    vectors, losses = diverse_invert(job.model, bank, token=job.token, concept_text=job.concept_text, templates=job.templates,
                                     indices=list(range(n)), total=n, bands=s["bands"], pairwise_max=s["pairwise_max"],
                                     diversity_weight=s["diversity_weight"], lr=s["lr"], batch_per_embedding=s["batch_per_embedding"],
                                     steps=s["steps"], seed=job.seed, progress=Progress(f"diverse inversion ({job.token})", s["steps"]),
                                     precision=s.get("precision", "float32"), gradient_checkpointing=s.get("gradient_checkpointing", False),
                                     checkpoint=job.checkpoint)
    direction = name_embedding(job.model.tokenizer, job.model.text_encoder.get_input_embeddings().weight.detach().cpu(), job.concept_text)
    to_concept = cosine_to(vectors, direction).tolist()
    pairwise = pairwise_similarity(vectors)
    kept = keep_diverse(pairwise, losses, s["pairwise_max"])
    with atomic_path(job.artefact) as tmp:  # one single-vector token per kept embedding
        save_file({f"{job.token}_{k:03d}": vectors[k:k + 1].contiguous() for k in kept}, str(tmp))
    off = pairwise[~torch.eye(len(vectors), dtype=torch.bool)].tolist()
    edges = [round(-1 + 0.1 * i, 1) for i in range(21)]
    return dict(embeddings=[dict(index=k, band=list(band_of(k, n, s["bands"])), similarity_to_concept=to_concept[k], loss=losses[k],
                                 kept=k in kept) for k in range(n)],
                kept=len(kept), pairwise_similarity=[[round(float(v), 4) for v in row] for row in pairwise],
                histogram=dict(edges=edges, similarity_to_concept=histogram(to_concept, edges), pairwise=histogram(off, edges)))
