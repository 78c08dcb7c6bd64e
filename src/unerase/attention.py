"""Cross-attention maps of a UNet: how much each latent position attends to each text token.

Forget-Me-Not minimises the concept tokens' maps, IRECE thresholds them into a mask, Receler
localises its regulariser with them. `CrossAttentionMaps` swaps every cross-attention (`attn2`)
processor for one that computes the attention probabilities explicitly (the arithmetic of
diffusers' AttnProcessor) and keeps them, with their gradient when the caller needs it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class _RecordingProcessor:
    def __init__(self, store: dict, name: str):
        self.store, self.name = store, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is None or hidden_states.ndim != 3 or attn.group_norm is not None or attn.spatial_norm is not None:
            raise ValueError(f"{self.name}: not a plain cross-attention layer")
        batch = hidden_states.shape[0]
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        mask = attn.prepare_attention_mask(attention_mask, encoder_hidden_states.shape[1], batch)
        probs = attn.get_attention_scores(query, key, mask)          # (B·heads, HW, L)
        self.store[self.name] = probs.view(batch, -1, *probs.shape[1:])  # (B, heads, HW, L)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


class CrossAttentionMaps:
    """`with CrossAttentionMaps(unet) as maps:` — after each UNet call inside, `maps.probs` holds
    every cross-attention layer's probabilities (B, heads, HW, L) of that call."""

    def __init__(self, unet):
        self.unet, self.probs = unet, {}

    def __enter__(self) -> "CrossAttentionMaps":
        self.saved = self.unet.attn_processors
        self.unet.set_attn_processor({name: _RecordingProcessor(self.probs, name) if ".attn2." in name else proc
                                      for name, proc in self.saved.items()})
        return self

    def __exit__(self, *exc):
        self.unet.set_attn_processor(self.saved)
        return False

    def token_maps(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, (B, HW): the mean over heads of the attention on the tokens where `positions`
        (B, L) is true, summed over those tokens."""
        weights = positions.to(torch.float32)
        return [torch.einsum("bhpl,bl->bp", p.float(), weights.to(p.device)) / p.shape[1] for p in self.probs.values()]


def normalised(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalised over every dimension but the first (per image), into [0, 1]."""
    flat = maps.flatten(1)
    low = flat.min(1).values.view(-1, *[1] * (maps.dim() - 1))
    high = flat.max(1).values.view(-1, *[1] * (maps.dim() - 1))
    return (maps - low) / (high - low).clamp_min(1e-12)


def aggregate(layer_maps: list[torch.Tensor], size: int) -> torch.Tensor:
    """(B, size, size): each layer's square map upsampled (bilinear) to `size`, averaged over layers."""
    grids = []
    for m in layer_maps:
        side = math.isqrt(m.shape[1])
        grids.append(F.interpolate(m.view(-1, 1, side, side), size=(size, size), mode="bilinear", align_corners=False))
    return torch.stack(grids).mean(0)[:, 0]


def end_of_text_positions(tokenizer, prompts: list[str]) -> torch.Tensor:
    """(B, L) bool: each prompt's end-of-text token, the one CLIP pools (Forget-Me-Not's `use_pooler`). Only the first:
    SD 1.4's tokenizer pads with the same id, so matching the id would mark every padding position."""
    mask = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").attention_mask
    out = torch.zeros_like(mask, dtype=torch.bool)
    out[torch.arange(len(prompts)), mask.sum(1) - 1] = True
    return out


def concept_positions(tokenizer, prompts: list[str], concept_text: str) -> torch.Tensor:
    """(B, L) bool: where the concept's tokens sit in each tokenized prompt (every occurrence)."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    concept = tokenizer(concept_text, add_special_tokens=False).input_ids
    if not concept:
        raise ValueError(f"the concept text '{concept_text}' has no tokens")
    out = torch.zeros_like(ids, dtype=torch.bool)
    n = len(concept)
    for b in range(ids.shape[0]):
        row = ids[b].tolist()
        for i in range(len(row) - n + 1):
            if row[i : i + n] == concept:
                out[b, i : i + n] = True
    return out
