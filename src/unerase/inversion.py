"""Concept Inversion (Pham et al. 2024): textual inversion of new placeholder tokens on an erased
model. If the erased UNet still draws the concept for *some* input, the tokens find that input.

Several vectors per concept, as diffusers' multi-vector textual inversion: tokens `<t>`, `<t>_1`, …
saved as {"<t>": (K, D)} in `learned_embeds.safetensors`, which `load_textual_inversion` reads.
"""
from __future__ import annotations

import copy
import random
import re

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .checkpoint import Checkpointer, rng_state, set_rng_state
from .components import Components
from .diffusion import LatentBank, denoising_loss
from .progress import Progress
from .runtime import activation_checkpointing, training_autocast
from .seeding import derived
from .text import encode


def placeholder_tokens(token: str, num_vectors: int) -> list[str]:
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def add_tokens(components: Components, token: str, vectors: torch.Tensor) -> str:
    """Register `token` (K vectors) in tokenizer and text encoder; returns the prompt text to use."""
    tokens = placeholder_tokens(token, len(vectors))
    added = components.tokenizer.add_tokens(tokens)
    if added != len(tokens):
        raise ValueError(f"tokenizer already has tokens named like '{token}'")
    components.text_encoder.resize_token_embeddings(len(components.tokenizer), mean_resizing=False)
    ids = components.tokenizer.convert_tokens_to_ids(tokens)
    with torch.no_grad():
        components.text_encoder.get_input_embeddings().weight[ids] = vectors.to(components.text_encoder.dtype).to(components.device)
    return " ".join(tokens)


def load_learned_embeds(components: Components, path: str, as_token: str | None = None) -> str:
    """Register the file's token (K vectors); `as_token` renames it, so two files learned with one
    token name (white-box and transfer embeddings) can be used by one model."""
    (token, vectors), = load_file(path).items()
    return add_tokens(components, as_token or token, vectors)


def load_token_set(components: Components, path: str, as_token: str | None = None) -> list[str]:
    """Register every token of a learned-embeddings file (one key per token, e.g. a Diverse-Inversion
    set); returns each one's prompt text, in the file's key order. `as_token` renames them, keeping
    each key's index suffix ("<x>_007" -> "<as_token>_007"), so names in tables match the indices of
    the attack's record (a Diverse-Inversion set keeps only some of its embeddings)."""
    state = load_file(path)
    if len(state) == 1 or as_token is None:
        return [add_tokens(components, as_token if len(state) == 1 and as_token else token, vectors) for token, vectors in sorted(state.items())]
    names = []
    for i, key in enumerate(sorted(state)):
        suffix = re.search(r"_(\d+)$", key)
        names.append(f"{as_token}_{suffix.group(1) if suffix else f'{i:03d}'}")
    return [add_tokens(components, name, state[key]) for name, key in zip(names, sorted(state))]


def own_text_side(components: Components) -> Components:
    """The model with its own tokenizer and text encoder (the UNet, VAE and scheduler shared): tokens added there
    leave the original's text side as it was."""
    view = copy.copy(components)
    view.tokenizer = copy.deepcopy(components.tokenizer)
    view.text_encoder = copy.deepcopy(components.text_encoder)
    return view


def init_vectors(components: Components, init_text: str, num_vectors: int) -> torch.Tensor:
    ids = components.tokenizer(init_text, add_special_tokens=False).input_ids
    table = components.text_encoder.get_input_embeddings().weight.detach()
    return table[ids].mean(0, keepdim=True).repeat(num_vectors, 1).cpu()


class PlaceholderEmbedding(torch.nn.Module):
    """The text encoder's token table, frozen, with the placeholder tokens' rows read from a small
    trainable (K, D) tensor. Only K·D values get gradients and optimizer state, not the whole
    49,408-row table (diffusers' textual_inversion trains the whole table and restores the other
    rows after each step: same result, about 3 M values of Adam work per step more)."""

    def __init__(self, table: torch.nn.Embedding, ids: torch.Tensor, vectors: torch.Tensor):
        super().__init__()
        self.table = table
        self.register_buffer("ids", ids.to(table.weight.device))
        self.vectors = torch.nn.Parameter(vectors.to(table.weight.device, table.weight.dtype))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.table(input_ids)
        for row, token_id in enumerate(self.ids):
            out = torch.where((input_ids == token_id).unsqueeze(-1), self.vectors[row], out)
        return out


def invert(components: Components, bank: LatentBank, *, token: str, templates: list[str], num_vectors: int, init_text: str,
           lr: float, batch_size: int, steps: int, seed: int, checkpoint: str | None = None, checkpoint_every: int = 100,
           objective=None, fingerprint: dict | None = None, precision: str = "float32",
           gradient_checkpointing: bool = False, weight_decay: float = 0.0, data: dict | None = None) -> torch.Tensor:
    """Learn K vectors for `token` on the (frozen) model; returns them (K, D) and leaves them in the table.
    `weight_decay`: AdamW's decoupled decay of the vectors (diffusers' textual-inversion script and CCE: 1e-2).
    `data`: what else decides the vectors (the attack's own captions, flipped images), for the checkpoint's tag only.
    `objective(latents, context, template_indices, gen) -> loss` replaces the denoising loss (e.g. the
    SLD-unrolled objective of unerase.attacks.sld_inversion); `fingerprint` names it in checkpoints.
    `precision` bfloat16 | float16 runs each step's forward under autocast (the vectors stay float32);
    `gradient_checkpointing` trades a recomputed forward for the UNet's activation memory (same vectors)."""
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    placeholder = add_tokens(components, token, init_vectors(components, init_text, num_vectors))
    ids = torch.tensor(components.tokenizer.convert_tokens_to_ids(placeholder_tokens(token, num_vectors)))
    encoder = components.text_encoder
    table = encoder.get_input_embeddings()
    embedding = PlaceholderEmbedding(table, ids, table.weight.detach()[ids].clone())
    opt = torch.optim.AdamW([embedding.vectors], lr=lr, weight_decay=weight_decay, fused=True)
    ckpt = Checkpointer(checkpoint, dict(token=token, k=num_vectors, init=init_text, lr=lr, bs=batch_size, steps=steps, seed=seed,
                                         state="vectors-only", **({"objective": fingerprint} if fingerprint else {}),
                                         **({"precision": precision} if precision != "float32" else {}),
                                         **({"weight_decay": weight_decay} if weight_decay else {}), **(data or {})), checkpoint_every)
    start = 0
    if state := ckpt.load():
        with torch.no_grad():
            embedding.vectors.copy_(state["vectors"])
        opt.load_state_dict(state["opt"]); gen.set_state(state["gen"]); set_rng_state(state["rng"])
        rng.seed(derived(seed, state["step"])); start = state["step"]
    progress = Progress(f"concept inversion ({token})", steps, start)
    encoder.set_input_embeddings(embedding)
    try:
        with activation_checkpointing(components.unet, gradient_checkpointing):
            for step in range(start, steps):
                which = [rng.randrange(len(templates)) for _ in range(batch_size)]
                captions = [templates[i].format(placeholder) for i in which]
                idx = torch.randint(0, len(bank), (batch_size,), generator=gen)
                with training_autocast(components.device, precision):
                    context = encode(components.tokenizer, encoder, captions)
                    if objective is None:
                        loss = denoising_loss(components.unet, components.scheduler, bank.draw(idx, gen), context, gen)
                    else:
                        loss = objective(bank.draw(idx, gen), context, which, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                progress.update(step, loss.item())
                ckpt.maybe_save(step, steps, lambda: dict(vectors=embedding.vectors.detach().cpu(), opt=opt.state_dict(),
                                                          gen=gen.get_state(), rng=rng_state()))
    finally:
        encoder.set_input_embeddings(table)
    vectors = embedding.vectors.detach()
    with torch.no_grad():
        table.weight[ids.to(table.weight.device)] = vectors
    ckpt.clear()
    return vectors.cpu().clone()


def save_learned_embeds(path: str, token: str, vectors: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        save_file({token: vectors.contiguous()}, str(tmp))
