"""Unified Concept Editing (Gandikota et al. 2024): a closed-form edit of every cross-attention key
and value projection W (attn2.to_k, attn2.to_v) so that the concept's text embedding c_e maps to
what W gives the guide concept, v* = W·c_guide, while preserved concepts keep W·c_p:

    W' = (λW + s_e Σ v*·c_eᵀ + s_p Σ (W·c_p)·c_pᵀ) (λI + s_e Σ c_e·c_eᵀ + s_p Σ c_p·c_pᵀ)⁻¹,

the minimiser of λ‖W'−W‖² + s_e Σ‖W'c_e − v*‖² + s_p Σ‖W'c_p − W c_p‖². As in the reference
(`trainscripts/uce_sd_erase.py`), c is the text encoder's output at a prompt's last word token; the
prompts are the config's templates filled with the concept (the reference's `expand_prompts`), and the
preserved concepts are the other classes, through the same templates.
"""
from __future__ import annotations

import torch

from ..progress import log
from ..text import tokenize
from .job import ErasureJob, ErasureResult


def last_token_embeddings(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    """(N, D): each prompt's text-encoder output at its last token before the end-of-text token."""
    ids = tokenize(tokenizer, prompts).to(text_encoder.device)
    lengths = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").attention_mask.sum(1)
    with torch.no_grad():
        states = text_encoder(ids)[0]
    return states[torch.arange(len(prompts)), (lengths - 2).to(states.device)]


def uce_weight(w: torch.Tensor, erase_c: torch.Tensor, erase_v: torch.Tensor, preserve_c: torch.Tensor, preserve_v: torch.Tensor,
               lam: float, erase_scale: float, preserve_scale: float) -> torch.Tensor:
    """The closed form above; c are rows (N, D_in), v rows (N, D_out), w (D_out, D_in). Solved in float64."""
    w64, ec, ev, pc, pv = (t.double() for t in (w, erase_c, erase_v, preserve_c, preserve_v))
    lhs = lam * w64 + erase_scale * ev.T @ ec + preserve_scale * pv.T @ pc
    gram = lam * torch.eye(w.shape[1], dtype=torch.float64, device=w.device) + erase_scale * ec.T @ ec + preserve_scale * pc.T @ pc
    # W' = lhs · gram⁻¹, and gram is symmetric positive definite: solve gram · W'ᵀ = lhsᵀ
    return torch.linalg.solve(gram, lhs.T).T.to(w.dtype)


def cross_attention_projections(unet: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    out = {name: module for name, module in unet.named_modules() if ".attn2." in f".{name}" and name.endswith((".to_k", ".to_v"))}
    if not out:
        raise ValueError("UCE: this UNet has no cross-attention key/value projections (attn2.to_k / attn2.to_v)")
    return out


def erase(job: ErasureJob) -> ErasureResult:
    s = job.settings
    tok, enc = job.model.tokenizer, job.model.text_encoder
    erase_c = last_token_embeddings(tok, enc, [t.format(job.concept_text) for t in job.templates])
    guide_c = last_token_embeddings(tok, enc, [s["guide"]])
    preserved = job.other_classes() if s["preserve"] == "others" else []
    preserve_c = last_token_embeddings(tok, enc, [t.format(p) for p in preserved for t in job.templates]) if preserved \
        else erase_c.new_zeros((0, erase_c.shape[1]))
    changed = []
    with torch.no_grad():
        for name, proj in cross_attention_projections(job.model.unet).items():
            w = proj.weight
            erase_v = (guide_c @ w.T).expand(len(erase_c), -1)
            proj.weight.copy_(uce_weight(w, erase_c, erase_v, preserve_c, preserve_c @ w.T, s["lam"], s["erase_scale"], s["preserve_scale"]))
            changed.append(f"{name}.weight")
    log.info("uce: edited %d projections; %d erase prompts towards %r, %d preserved prompts", len(changed), len(erase_c), s["guide"],
             len(preserve_c))
    return ErasureResult(changed, dict(edited=len(changed), erase_prompts=len(erase_c), preserve_prompts=len(preserve_c), guide=s["guide"]))
