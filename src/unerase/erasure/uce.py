"""Unified Concept Editing (Gandikota et al. 2024): a closed-form edit of every cross-attention key
and value projection W (attn2.to_k, attn2.to_v) so that the concept's text embedding c_e maps to
what W gives the guide concept, v* = W·c_guide, while preserved concepts keep W·c_p:

    W' = (λW + s_e Σ v*·c_eᵀ + s_p Σ (W·c_p)·c_pᵀ) (λI + s_e Σ c_e·c_eᵀ + s_p Σ c_p·c_pᵀ)⁻¹,

the minimiser of λ‖W'−W‖² + s_e Σ‖W'c_e − v*‖² + s_p Σ‖W'c_p − W c_p‖². The sums run over text-
encoder output rows (`uce.tokens`):
- `last_to_end` (the paper's code, `train-scripts/train_erase.py`): the erased prompt's rows from its
  last word token to the end (end-of-text and padding, which a causal text encoder fills with the
  prompt too), paired position by position with the guide's rows; every row of a preserved prompt.
- `last` (the newer `trainscripts/uce_sd_erase.py`): one row per prompt, its last word token.
The prompts are the config's templates filled with the concept (the reference's `expand_prompts`);
the preserved concepts are the other classes through the same templates. `preserve_scale: null` is
train_erase.py's default: the empty prompt is preserved too (`retain_texts = [''] + preserve_concepts`) at
s_p = max(0.1, 1 / len(retain_texts)); uce_sd_erase.py's is 1 with one row per prompt (`tokens: last`).
"""
from __future__ import annotations

import torch

from ..progress import log
from .job import ErasureJob, ErasureResult


def encode_with_last_index(tokenizer, text_encoder, prompts: list[str]) -> tuple[torch.Tensor, list[int]]:
    """(N, L, D) text-encoder outputs and, per prompt, the position of its last word token."""
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = text_encoder(tokens.input_ids.to(text_encoder.device))[0]
    return states, [int(n) - 2 for n in tokens.attention_mask.sum(1)]


def edit_rows(tokenizer, text_encoder, prompts: list[str], guide: str, tokens: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(erased rows c_e, guide rows c_g), paired row by row, for the erased `prompts`."""
    states, last = encode_with_last_index(tokenizer, text_encoder, prompts)
    g_states, (g_last,) = encode_with_last_index(tokenizer, text_encoder, [guide])
    if tokens == "last":
        return states[torch.arange(len(prompts)), last], g_states[0, g_last].expand(len(prompts), -1)
    if tokens != "last_to_end":
        raise ValueError(f"erasure.uce.tokens: '{tokens}' is not one of last, last_to_end")
    length = states.shape[1]
    erased, guided = [], []
    for i, idx in enumerate(last):
        far = max(idx, g_last)  # the reference's alignment: both spans end where the longer prompt's would
        erased.append(states[i, idx : length - (far - idx)])
        guided.append(g_states[0, g_last : length - (far - g_last)])
    return torch.cat(erased), torch.cat(guided)


def preserve_rows(tokenizer, text_encoder, prompts: list[str], tokens: str) -> torch.Tensor:
    states, last = encode_with_last_index(tokenizer, text_encoder, prompts)
    if tokens == "last":
        return states[torch.arange(len(prompts)), last]
    return states.reshape(-1, states.shape[-1])  # every row, as the paper's code preserves them


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
    erase_c, guide_c = edit_rows(tok, enc, [t.format(job.concept_text) for t in job.templates], s["guide"], s["tokens"])
    preserved = [t.format(p) for p in job.other_classes() for t in job.templates] if s["preserve"] == "others" else []
    preserve_scale = s["preserve_scale"]
    if preserve_scale is None:  # train_erase.py: retain_texts = [''] + preserve_concepts, max(0.1, 1 / len(retain_texts))
        preserved = [""] + preserved
        preserve_scale = max(0.1, 1 / len(preserved))
    preserve_c = preserve_rows(tok, enc, preserved, s["tokens"]) if preserved else erase_c.new_zeros((0, erase_c.shape[1]))
    changed = []
    with torch.no_grad():
        for name, proj in cross_attention_projections(job.model.unet).items():
            w = proj.weight
            proj.weight.copy_(uce_weight(w, erase_c, guide_c @ w.T, preserve_c, preserve_c @ w.T, s["lam"], s["erase_scale"],
                                         preserve_scale))
            changed.append(f"{name}.weight")
    log.info("uce: edited %d projections; %d erased rows (%s) towards %r, %d preserved rows", len(changed), len(erase_c), s["tokens"],
             s["guide"], len(preserve_c))
    return ErasureResult(changed, dict(edited=len(changed), erased_rows=len(erase_c), preserved_rows=len(preserve_c),
                                       erase_prompts=len(job.templates), preserve_prompts=len(preserved), preserve_scale=preserve_scale))
