"""Turning prompts into the text-encoder states the UNet's cross-attention reads."""
from __future__ import annotations

import torch


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def encode(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    """Hidden states (B, 77, D). Identical prompts are encoded once: captions repeat a lot, and this
    keeps gradients exact (the same rows are just shared)."""
    unique = sorted(set(prompts))
    index = torch.tensor([unique.index(p) for p in prompts])
    ids = tokenize(tokenizer, unique).to(text_encoder.device)
    states = text_encoder(ids)[0]
    return states[index.to(states.device)]


def name_embedding(tokenizer, table: torch.Tensor, text: str) -> torch.Tensor:
    """The input embedding of a name (D,): the mean of its tokens' rows of the token table `table` (V, D).
    Diverse Inversion's concept direction and the safety grid's class-name vectors."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ValueError(f"name '{text}' has no tokens")
    return table[ids].mean(0)
