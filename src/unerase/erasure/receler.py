"""Receler (Huang et al. 2024): lightweight *erasers* — adapters after each cross-attention layer
(unerase.adapters) — trained while the UNet stays frozen, with
- ESD's objective: given the concept, predict ε(x_t, ∅) − η·(ε(x_t, c) − ε(x_t, ∅)) of the frozen model;
- concept-localised regularisation: the erasers' output outside the concept's region is pushed to zero
  (weight 0.1), so the rest of an image is left alone. The region (`mask`): "reference" — the frozen model's
  attention on the bare concept word at the step's x_t, averaged over the layers of `mask_resolution` (16 on SD 1.4),
  min-max normalised, thresholded (0.1), resized to each layer; the penalty divided by the outside pixels (its
  concept_reg.py; sd14) — or "per-layer" — each layer's own map from the model being trained on the step's prompts,
  the penalty a mean over all pixels (the digits default, as measured: the digits UNet has no 16 x 16 layer);
- adversarial prompt learning: every `adversarial_every` steps, soft tokens appended to the concept's
  prompt are trained (`adversarial_steps` steps) to make the erased model predict what the frozen
  model predicts for the concept; the erasers then also learn to erase under them.
Reference settings (jasper0314-huang/Receler, protocols.md): 500 iterations, lr 3e-4, 50 adversarial
iterations, 16 adversarial prompts, regulariser 0.1, mask threshold 0.1. x_t (`xt_source`): noised concept
images (the digits default), or, as the reference's quick_sample_till_t, sampled by the eraser-equipped model being
trained from fresh noise with the plain concept prompt, stopped at a random DDIM step (ESD's, `model`; sd14).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..adapters import install_erasers
from ..attention import CrossAttentionMaps, concept_positions, normalised
from ..diffusion import add_noise
from ..inversion import PlaceholderEmbedding, add_tokens, init_vectors, placeholder_tokens
from ..progress import log
from ..text import encode
from . import training
from .esd import model_sampled_xt, negatively_guided
from .job import ErasureJob, ErasureResult

ADVERSARY = "<receler-adv>"


def localised_penalty(maps: CrossAttentionMaps, erasers: dict, positions: torch.Tensor, threshold: float) -> torch.Tensor:
    """mean over layers, positions and channels of ((1 − M_ℓ) ⊙ E_ℓ(o_ℓ))²: the erasers' output where the
    concept's tokens are not attended, on the scale of the denoising MSE (a sum over channels outweighed
    the erasure objective 32-64× on the digits model and kept the erasers at identity)."""
    total = 0.0
    for name, attention in zip(maps.probs, maps.token_maps(positions)):
        outside = (normalised(attention) < threshold).detach()
        total = total + (erasers[name.removesuffix(".processor")].last.pow(2).mean(-1) * outside).mean()
    return total / len(maps.probs)


def reference_mask(frozen, x_t, t, concept_cond, positions: torch.Tensor, resolution: int, threshold: float) -> torch.Tensor:
    """(B, R, R) bool, Receler's concept region as its concept_reg.get_mask: the frozen model's cross-attention on the
    bare concept's tokens at this step's x_t and t, mean over heads and tokens, over the layers of R x R (the
    reference: 16, "following MasaCtrl"), min-max normalised per image, at least `threshold`."""
    with torch.no_grad(), CrossAttentionMaps(frozen) as maps:
        frozen(x_t, t, encoder_hidden_states=concept_cond)
    layers = maps.token_maps(positions)
    chosen = [m for m in layers if m.shape[1] == resolution * resolution]
    if not chosen:
        sides = sorted({int(round(m.shape[1] ** 0.5)) for m in layers})
        raise ValueError(f"config key 'erasure.receler.mask_resolution': {resolution}: this UNet's cross-attention maps are {sides} pixels a side")
    return normalised(torch.stack(chosen).mean(0)).view(-1, resolution, resolution) >= threshold


def outside_penalty(erasers: dict, inside: torch.Tensor) -> torch.Tensor:
    """Receler's concept_reg loss: per eraser, its output's squared mean over channels summed over the pixels outside
    the region (`inside` (B, R, R), resized to the layer's side by nearest neighbour) and divided by their number;
    the mean over erasers."""
    total = 0.0
    for eraser in erasers.values():
        out = eraser.last.pow(2).mean(-1)  # (B, HW)
        side = int(round(out.shape[1] ** 0.5))
        outside = 1 - F.interpolate(inside[:, None].float(), size=(side, side), mode="nearest").flatten(1)
        total = total + (out * outside).sum() / (outside.sum() + 1e-9)
    return total / len(erasers)


def erase(job: ErasureJob) -> ErasureResult:
    """Config block `erasure.receler` (method "receler")."""
    s, model = job.settings, job.model
    unet, tok, encoder = model.unet, model.tokenizer, model.text_encoder
    frozen = copy.deepcopy(unet).requires_grad_(False).eval()
    bank = job.concept_bank()
    torch.manual_seed(job.seed)  # the erasers' initial down-projections
    erasers = install_erasers(unet, s["rank"])
    unet.requires_grad_(False)
    params = [p.requires_grad_(True) for e in erasers.values() for p in e.parameters()]
    names = [n for n, _ in unet.named_parameters() if ".attn2.eraser." in n]
    batch, eta = s["batch_size"], s["negative_guidance"]
    uncond = encode(tok, encoder, [""] * batch)
    bare = encode(tok, encoder, [job.concept_text] * batch).detach()  # the reference's mask prompt: the concept's word alone
    bare_positions = concept_positions(tok, [job.concept_text] * batch, job.concept_text)

    adversary = None
    if s["adversarial_tokens"]:
        placeholder = add_tokens(model, ADVERSARY, init_vectors(model, job.concept_text, s["adversarial_tokens"]))
        ids = torch.tensor(tok.convert_tokens_to_ids(placeholder_tokens(ADVERSARY, s["adversarial_tokens"])))
        table = encoder.get_input_embeddings()
        adversary = PlaceholderEmbedding(table, ids, table.weight.detach()[ids].clone())
        adversary_opt = torch.optim.Adam([adversary.vectors], lr=s["adversarial_lr"])
        encoder.set_input_embeddings(adversary)  # rows of the placeholder tokens read from adversary.vectors

    def noisy_concept(gen, prompts):
        if s.get("xt_source", "concept_images") == "model":
            cond = encode(tok, encoder, prompts).detach()
            return model_sampled_xt(unet, model, cond, uncond, batch, s["ddim_steps"], s["start_guidance"], gen)
        idx = torch.randint(0, len(bank), (batch,), generator=gen)
        x_t, _, t = add_noise(model.scheduler, bank.draw(idx, gen), gen)
        return x_t, t

    def concept_prompts(rng):
        return [rng.choice(job.templates).format(job.concept_text) for _ in range(batch)]

    def adversarial_round(gen, rng):
        """The soft tokens learn to bring the concept back through the current erasers."""
        for _ in range(s["adversarial_steps"]):
            prompts = concept_prompts(rng)
            x_t, t = noisy_concept(gen, prompts)
            with torch.no_grad():
                target = frozen(x_t, t, encoder_hidden_states=encode(tok, encoder, prompts)).sample
            attacked = unet(x_t, t, encoder_hidden_states=encode(tok, encoder, [f"{p} {placeholder}" for p in prompts])).sample
            loss = F.mse_loss(attacked, target)
            adversary_opt.zero_grad(set_to_none=True)
            loss.backward(inputs=[adversary.vectors])  # the erasers' gradients are left alone
            adversary_opt.step()
        log.info("receler: adversarial prompt loss %.4f", loss.item())

    def loss_fn(step, gen, rng):
        if adversary is not None and step % s["adversarial_every"] == 0:
            adversarial_round(gen, rng)
        plain = concept_prompts(rng)
        adversarial = adversary is not None and step % 2 == 1  # plain and adversarial prompts alternate
        prompts = [f"{p} {placeholder}" for p in plain] if adversarial else plain
        x_t, t = noisy_concept(gen, plain)
        with torch.no_grad():
            cond = encode(tok, encoder, prompts)
            target = negatively_guided(frozen, x_t, t, uncond, encode(tok, encoder, plain), eta)
        if s.get("mask", "per-layer") == "reference":
            inside = reference_mask(frozen, x_t, t, bare, bare_positions, s["mask_resolution"], s["mask_threshold"])
            pred = unet(x_t, t, encoder_hidden_states=cond).sample
            penalty = outside_penalty(erasers, inside)
        else:
            with CrossAttentionMaps(unet) as maps:
                pred = unet(x_t, t, encoder_hidden_states=cond).sample
            penalty = localised_penalty(maps, erasers, concept_positions(tok, prompts, job.concept_text), s["mask_threshold"])
        return F.mse_loss(pred, target) + s["regularisation"] * penalty

    modules = dict(erasers=torch.nn.ModuleDict({k.replace(".", "-"): e for k, e in erasers.items()}))
    if adversary is not None:  # its vectors resume with the erasers (not the token table; its optimiser's moments restart)
        modules["adversary"] = torch.nn.Module()
        modules["adversary"].vectors = adversary.vectors
    try:
        training.train("receler", modules, params,
                       loss_fn, steps=s["steps"], lr=s["lr"], seed=job.seed, settings=job.fingerprint(),
                       checkpoint=job.checkpoint)
    finally:
        if adversary is not None:
            encoder.set_input_embeddings(adversary.table)
    unet.eval().requires_grad_(False)
    return ErasureResult(names, dict(erasers=len(erasers), rank=s["rank"]))
