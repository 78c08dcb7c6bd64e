"""Forget-Me-Not (Zhang et al. 2024), attention re-steering: fine-tune the UNet so that the concept's
tokens receive no cross-attention — minimise Σ_layers ‖A_ℓ[:, :, concept tokens]‖² on noisy concept
images captioned with the concept's prompts (the reference `attn.yaml`). With `ti_steps` > 0, the
reference's optional first stage (`ti.yaml`): the concept is first learned as textual-inversion tokens
on its images, and the re-steering targets those tokens in the captions instead of the name's. With
`use_pooler`, the end-of-text token's maps too (attn.yaml's `use_pooler: true`). The loss (`loss`): "reference" —
train_attn.py's AttnController, the L2 norm (not squared) of every layer's, head's, pixel's and concept token's
attention probability, each head and token on its own (sd14) — or "head-mean": per layer the squared norm of the
maps averaged over heads and summed over the tokens, averaged over layers (the digits default, as measured).
`weight_decay`: attn.yaml's AdamW 0.01 (sd14; the digits: 0, Adam).
"""
from __future__ import annotations

import torch

from ..attention import CrossAttentionMaps, concept_positions, end_of_text_positions
from ..diffusion import add_noise
from ..inversion import invert, own_text_side, placeholder_tokens
from ..progress import log
from ..text import encode
from . import training
from .job import ErasureJob, ErasureResult

TI_TOKEN = "<fmn-concept>"


def learn_concept_tokens(job: ErasureJob, bank) -> tuple[object, str, list[float]]:
    """The first stage: `ti_vectors` tokens learned by textual inversion on the concept images, initialised from
    the name, on a copy of the text side sharing the UNet (the patch is the UNet's; the tokens are not kept).
    Returns that model view, the tokens' prompt text and the learned vectors' norms (recorded)."""
    s = job.settings
    model = own_text_side(job.model)
    vectors = invert(model, bank, token=TI_TOKEN, templates=job.templates, num_vectors=s["ti_vectors"], init_text=job.concept_text,
                     lr=s["ti_lr"], batch_size=s["batch_size"], steps=s["ti_steps"], seed=job.seed)
    log.info("forget-me-not: concept learned as %d token(s) in %d steps", len(vectors), s["ti_steps"])
    return model, " ".join(placeholder_tokens(TI_TOKEN, s["ti_vectors"])), vectors.norm(dim=1).tolist()


def resteering_norm(probs: list[torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
    """train_attn.py's loss: torch.cat(attn_probs).norm() — the L2 norm over every layer, head, pixel and concept token
    of the attention probabilities (`probs`: per layer (B, heads, HW, L); `positions` (B, L) the tokens re-steered)."""
    mask = positions.to(torch.float32)
    return torch.sqrt(sum((p.float().pow(2) * mask.to(p.device)[:, None, None, :]).sum() for p in probs))


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.forget_me_not` (method "fmn")."""
    s, model = job.settings, job.model
    bank = job.concept_bank()
    target, info = job.concept_text, {"resteered": "name"}
    if s["ti_steps"]:
        model, target, norms = learn_concept_tokens(job, bank)
        info = {"resteered": "textual-inversion tokens", "ti_tokens": target, "ti_vector_norms": norms}
    unet = model.unet

    def loss_fn(step, gen, rng):
        prompts = [rng.choice(job.templates).format(target) for _ in range(s["batch_size"])]
        idx = torch.randint(0, len(bank), (s["batch_size"],), generator=gen)
        x_t, _, t = add_noise(model.scheduler, bank.draw(idx, gen), gen)
        positions = concept_positions(model.tokenizer, prompts, target)
        if s.get("use_pooler"):
            positions |= end_of_text_positions(model.tokenizer, prompts)
        with CrossAttentionMaps(unet) as maps:
            unet(x_t, t, encoder_hidden_states=encode(model.tokenizer, model.text_encoder, prompts))
            if s.get("loss", "head-mean") == "reference":
                return resteering_norm(list(maps.probs.values()), positions)
            layers = maps.token_maps(positions)
        return sum(m.pow(2).sum(1).mean() for m in layers) / len(layers)

    names = training.finetune_group("forget-me-not", job, s["parameters"], loss_fn, steps=s["steps"], lr=s["lr"],
                                    grad_clip=s.get("grad_clip"), weight_decay=s.get("weight_decay", 0.0))
    return ErasureResult(names, info)
