"""UnlearnDiff (Zhang et al. 2024, UnlearnDiffAtk; OPTML-Group/Diffusion-MU-Attack, attacker `text_grad`):
a white-box prompt attack that uses the erased model's own denoising loss as its objective.

K adversarial tokens go before a prompt that names the concept. Each token is a distribution over the
vocabulary, optimised so that the audited model denoises a concept image (drawn by the base model from
that prompt) as well as it can: an erased model that no longer predicts the concept's noise is pushed
back to it. One optimisation step, as in the reference:

1. draw one token per position from its distribution (one-hot; the straight-through gradient is
   clipped to [-1, 1], the reference's hardtanh), embed it with the token table;
2. the text encoder, then the UNet on the image's latent noised at the stage's timestep with fresh
   noise; the loss is the MSE to that noise;
3. Adam (lr, weight decay) on the distributions, then each one projected back onto the simplex.

Timesteps come in stages, from the least noisy up (reference: 50 evenly spaced, 40 steps each); after
the last stage the most likely token of each position is the attack's prompt.

Differences from the reference, all recorded in the artefact:
- No early stop on the evaluator. The reference draws one image after every stage and stops at the
  first that the evaluator calls the concept, so its success is "any of up to 50 tries", judged by the
  evaluator that then reports it. Here the attack sees the model only (white-box), runs its stages, and
  the audit scores its prompts on the cell's fresh seeds like every other attack's.
- One prompt per template naming the concept, all optimised in one batch, each with its own
  distributions and concept image(s); the reference attacks one prompt per run.
- The distributions cover the search vocabulary (no start/end/added tokens), so the tokens decode to
  text that the generation step can re-tokenise; the reference's cover every id.
- The simplex projection is exact (sort-based; Duchi et al. 2008) instead of bisection to 1e-5.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..atomic import write_json
from ..diffusion import LatentBank
from ..images_io import load_image_set
from ..progress import Progress
from ..seeding import derived
from ..text import tokenize
from .job import AttackJob
from .ring_a_bell import search_vocabulary


def project_simplex(v: torch.Tensor, rounds: int = 16) -> torch.Tensor:
    """Euclidean projection of each row (last dim) onto the probability simplex {p >= 0, sum p = 1}: p = max(v - theta, 0).
    Up to `rounds` of Michelot's fixed point (theta = (sum of the entries above theta - 1) / their count) find theta,
    exactly, when they converge, which they mostly do in a few rounds; theta only grows towards the answer, so if they
    have not converged, the support lies among the entries still above it and the textbook sort-based rule (Duchi et al.
    2008) finishes on those alone (top-k). A full sort of every 49,408-entry row took a third of the attack's time on the
    CPU; Michelot alone can take thousands of rounds when a distribution concentrates slowly (91 s for one attack)."""
    theta = (v.sum(-1, keepdim=True) - 1) / v.shape[-1]
    count = torch.full_like(theta, v.shape[-1])
    for _ in range(rounds):
        above = v > theta  # never empty: theta stays below the projection's, which is below the row's maximum
        new_count = above.sum(-1, keepdim=True).to(v.dtype)
        if torch.equal(new_count, count):
            return (v - theta).clamp_min(0)
        count = new_count
        theta = (torch.where(above, v, 0).sum(-1, keepdim=True) - 1) / count
    u = torch.topk(v, int((v > theta).sum(-1).max()), dim=-1).values  # holds every row's support
    excess = u.cumsum(-1) - 1
    rho = (u - excess / torch.arange(1, u.shape[-1] + 1, device=v.device, dtype=v.dtype) > 0).sum(-1, keepdim=True)
    return (v - excess.gather(-1, rho - 1) / rho.to(v.dtype)).clamp_min(0)


class SampleOneHot(torch.autograd.Function):
    """A one-hot draw from each distribution; backward passes the gradient straight through, clipped to [-1, 1]."""

    @staticmethod
    def forward(ctx, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # inverse-CDF sampling: one uniform per row against the running sum (torch.multinomial was 4x slower on 49,408 tokens)
        flat = probs.detach().reshape(-1, probs.shape[-1]).double().cpu()
        cdf = flat.cumsum(-1)
        u = torch.rand(len(flat), 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
        index = torch.searchsorted(cdf, u, right=True).clamp_max(probs.shape[-1] - 1)
        return F.one_hot(index.view(probs.shape[:-1]).to(probs.device), probs.shape[-1]).to(probs.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return F.hardtanh(grad), None


def token_search(loss_fn, table: torch.Tensor, num_rows: int, num_tokens: int, stages: int, steps_per_stage: int, lr: float,
                 weight_decay: float, generator: torch.Generator, progress: Progress | None = None) -> torch.Tensor:
    """UnlearnDiffAtk's optimiser: distributions (rows, K, V) over the V embeddings of `table` (V, D), from
    uniform, minimising `loss_fn(embeddings (rows, K, D), stage) -> (rows,)` (each row its own objective).
    Returns the distributions; their argmax are the found tokens (indices into `table`)."""
    V = table.shape[0]
    probs = torch.full((num_rows, num_tokens, V), 1.0 / V, device=table.device, requires_grad=True)
    opt = torch.optim.Adam([probs], lr=lr, weight_decay=weight_decay)
    step = 0
    for stage in range(stages):
        for _ in range(steps_per_stage):
            embeddings = SampleOneHot.apply(probs, generator) @ table
            loss = loss_fn(embeddings, stage)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                probs.copy_(project_simplex(probs))
            if progress:
                progress.update(step, float(loss.detach().mean()))
            step += 1
    return probs.detach()


def stage_timesteps(num_train_timesteps: int, stages: int) -> list[int]:
    """The reference's evenly spaced timesteps, least noisy first: 10, 30, ..., 990 for 50 of 1,000."""
    stride = num_train_timesteps // stages
    return list(range(stride // 2, num_train_timesteps, stride))[:stages]


class PrefixEmbedding(torch.nn.Module):
    """The text encoder's token table, with positions 1..K of every prompt (right after the start token)
    read from `prefix` (rows, K, D): the adversarial tokens' embeddings of the current step."""

    def __init__(self, table: torch.nn.Embedding, num_tokens: int):
        super().__init__()
        self.table, self.num_tokens = table, num_tokens
        self.prefix: torch.Tensor | None = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.table(input_ids)
        return torch.cat([out[:, :1], self.prefix.to(out.dtype), out[:, 1 + self.num_tokens:]], 1)


def prefixed_ids(tokenizer, prompts: list[str], num_tokens: int) -> torch.Tensor:
    """The prompts' ids with K filler positions after the start token (PrefixEmbedding fills them), cut to the model's length."""
    ids = tokenize(tokenizer, prompts)
    filler = torch.full((len(prompts), num_tokens), tokenizer.bos_token_id, dtype=ids.dtype)
    return torch.cat([ids[:, :1], filler, ids[:, 1:]], 1)[:, : ids.shape[1]]


def concept_latents(model, path: str, prompts: list[str], per_prompt: int) -> torch.Tensor:
    """(prompts x per_prompt) latents (posterior means, scaled): for each prompt, the first concept images
    drawn from it (the reference attacks the image the base model drew for the prompt), else images in turn."""
    images, _, meta = load_image_set(path)
    drawn_from = meta.get("prompts") or []
    chosen = []
    for p, prompt in enumerate(prompts):
        own = [i for i, q in enumerate(drawn_from) if q == prompt][:per_prompt]
        others = [(p * per_prompt + j) % len(images) for j in range(per_prompt - len(own))]
        chosen.extend(own + others)
    bank = LatentBank.from_uint8(model, images[chosen])
    return bank.mean * bank.scale


def run(job: AttackJob) -> dict:
    s = job.settings
    model = job.model
    tok, encoder, unet, scheduler = model.tokenizer, model.text_encoder, model.unet, model.scheduler
    prompts = [t.format(job.concept_text) for t in job.templates][: s["num_prompts"]]
    R, K = s["images_per_prompt"], s["num_tokens"]
    x0 = concept_latents(model, job.inputs["concept_images"], prompts, R)
    timesteps = stage_timesteps(scheduler.config.num_train_timesteps, s["stages"])
    vocabulary = search_vocabulary(tok, job.concept_text.split() if s["exclude_concept_words"] else []).to(model.device)
    table_module = encoder.get_input_embeddings()
    table = table_module.weight.detach()[vocabulary].float()
    ids = prefixed_ids(tok, prompts, K).repeat_interleave(R, 0).to(model.device)
    plain_ids = tokenize(tok, prompts).repeat_interleave(R, 0).to(model.device)
    gen = torch.Generator().manual_seed(job.seed)
    prefix = PrefixEmbedding(table_module, K)

    def denoising_losses(context: torch.Tensor, stage: int, noise_gen: torch.Generator) -> torch.Tensor:
        """Each prompt's MSE to the noise at the stage's timestep, averaged over its images: (prompts,)."""
        noise = torch.randn(x0.shape, generator=noise_gen).to(x0.device, x0.dtype)
        t = torch.full((len(x0),), timesteps[stage], device=x0.device, dtype=torch.long)
        pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=context.to(unet.dtype)).sample
        return ((pred.float() - noise.float()) ** 2).mean((1, 2, 3)).view(len(prompts), R).mean(1)

    def attacked_context(embeddings: torch.Tensor) -> torch.Tensor:
        prefix.prefix = embeddings.repeat_interleave(R, 0)
        encoder.set_input_embeddings(prefix)
        try:
            return encoder(ids)[0]
        finally:
            encoder.set_input_embeddings(table_module)

    def mean_loss(context: torch.Tensor) -> torch.Tensor:
        """Each prompt's loss averaged over every stage's timestep with the same noise draws: before and after compare."""
        fixed = torch.Generator().manual_seed(derived(job.seed, 1))
        with torch.no_grad():
            return torch.stack([denoising_losses(context, stage, fixed) for stage in range(len(timesteps))]).mean(0)

    unet.requires_grad_(False)
    encoder.requires_grad_(False)
    progress = Progress(f"unlearn-diff ({job.concept_text})", s["stages"] * s["steps_per_stage"])
    probs = token_search(lambda e, stage: denoising_losses(attacked_context(e), stage, gen), table, len(prompts), K, s["stages"],
                         s["steps_per_stage"], s["lr"], s["weight_decay"], gen, progress=progress)
    found_ids = probs.argmax(-1)
    with torch.no_grad():
        without = mean_loss(encoder(plain_ids)[0])
        after = mean_loss(attacked_context(table[found_ids]))
    rows = []
    for p, prompt in enumerate(prompts):
        token_ids = vocabulary[found_ids[p]].tolist()
        adversarial = tok.decode(token_ids)
        text = f"{adversarial} {prompt}"
        rows.append(dict(prompt=text, adversarial_tokens=adversarial, token_ids=token_ids, base_prompt=prompt,
                         retokenises_exactly=tok(adversarial, add_special_tokens=False).input_ids == token_ids,
                         loss_without=float(without[p]), loss_with=float(after[p])))
    write_json(job.artefact, dict(attack=job.attack, concept=job.concept_text, prompts=[r["prompt"] for r in rows], found=rows,
                                  settings=dict(s), timesteps=timesteps, vocabulary_size=len(vocabulary), objective="denoising loss",
                                  early_stop="none (the reference stops at the evaluator's first success; see unerase.attacks.unlearn_diff)"))
    return dict(mean_loss_without=float(without.mean()), mean_loss_with=float(after.mean()),
                retokenise_exactly=sum(r["retokenises_exactly"] for r in rows))
