"""Concept Inversion through Safe Latent Diffusion (Pham et al. 2024, CCE, Algorithm 2): the tokens are
learned so that the *SLD-guided* prediction for the placeholder prompt matches the classifier-free
guided prediction for the concept's own prompt, with SLD's guidance unrolled inside the objective.

Per step (NYU-DICE-Lab/circumventing-concept-erasure, `sld/concept_inversion.py`): a timestep t0 is
drawn, then `unroll` distinct timesteps of the window [t0 − window, t0), in descending order; at each
one the noised latent (same image, same noise) is predicted under the empty prompt, the concept's
prompt, the safety concept and the placeholder prompt; SLD's term — its momentum carried from step
to step — is subtracted from the placeholder's guidance. The loss compares the last step's guided
prediction with ε_u + g·(ε_concept − ε_u): the gradient reaches the tokens through the guidance at
the last step and through the momentum of every earlier one. The reference hard-codes SLD-Max's
values with no warm-up; here the guard's own preset is used, with no warm-up, as in the reference.

Cost: every unrolled step keeps its UNet graph for the backward pass, so memory grows with
`sld_unroll` (SD 1.4 at CCE's sld/train.sh 35 of a 90-timestep window: about 35 UNet activations at the batch
size; config/sd14.yaml gives the SLD objective its own batch and rate, `sld_batch_size` 4 and `sld_lr` 0.02, as that
script's batch 1 x grad-accum 4 with 5e-3 scaled). The momentum's share of the gradient is small when
SLD's threshold masks most of the latent (its term is zero outside the mask); the guidance at the
last step carries most of it. Both are the reference's algorithm, kept as published.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..erasure.guards import SLD_PRESETS, SafeLatentGuidance
from ..text import encode


class SldUnrolledObjective:
    def __init__(self, components, *, preset: str, safety_concept: str, named_prompts: list[str], guidance_scale: float,
                 unroll: int, window: int):
        self.c, self.preset, self.g = components, preset, guidance_scale
        self.unroll, self.window, self.safety_concept = unroll, window, safety_concept
        T = components.scheduler.config.num_train_timesteps
        if not 1 <= unroll <= window < T:
            raise ValueError(f"config keys 'attacks.concept_inversion.sld_unroll' ({unroll}) and 'sld_window' ({window}): "
                             f"need 1 <= sld_unroll <= sld_window < {T}, the model's training timesteps")
        tok, enc = components.tokenizer, components.text_encoder
        with torch.no_grad():  # the contexts that do not depend on the tokens
            self.uncond = encode(tok, enc, [""])
            self.safety = encode(tok, enc, [safety_concept])
            self.named = encode(tok, enc, named_prompts)  # row i: template i with the concept's name

    def fingerprint(self) -> dict:
        return dict(kind="sld-unrolled", preset=self.preset, safety_concept=self.safety_concept, g=self.g, unroll=self.unroll,
                    window=self.window)

    def timesteps(self, gen: torch.Generator) -> torch.Tensor:
        T = self.c.scheduler.config.num_train_timesteps
        t0 = int(torch.randint(self.window, T, (), generator=gen))
        picks = torch.randperm(self.window, generator=gen)[: self.unroll] + t0 - self.window
        return torch.sort(picks, descending=True).values

    def __call__(self, latents: torch.Tensor, context: torch.Tensor, which: list[int], gen: torch.Generator) -> torch.Tensor:
        unet, sched = self.c.unet, self.c.scheduler
        B = len(latents)
        noise = torch.randn(latents.shape, generator=gen).to(latents.device)
        guidance, _, threshold, momentum, beta = SLD_PRESETS[self.preset]
        sld = SafeLatentGuidance(guidance, 0, threshold, momentum, beta)
        frozen_context = torch.cat([self.uncond.expand(B, -1, -1), self.named[torch.tensor(which)], self.safety.expand(B, -1, -1)])
        pred = target = None
        for t in self.timesteps(gen).to(latents.device):
            noisy = sched.add_noise(latents, noise, t.expand(B))
            with torch.no_grad():
                eps_u, eps_named, eps_s = unet(torch.cat([noisy] * 3), t, encoder_hidden_states=frozen_context).sample.chunk(3)
            eps_p = unet(noisy, t, encoder_hidden_states=context).sample
            pred = eps_u + self.g * sld.guided(0, eps_u, eps_p, eps_s)
            target = eps_u + self.g * (eps_named - eps_u)
        return F.mse_loss(pred.float(), target.float())


def objective_for(components, guards: dict, templates: list[str], concept_text: str, settings: dict, sampling: dict):
    """The inversion objective a model stack needs: SLD-unrolled when it has an SLD guard and the
    attack's `through_sld` is on; None (plain denoising) otherwise."""
    safety = guards.get("safety")
    if safety is None or not settings.get("through_sld", False):
        return None
    return SldUnrolledObjective(components, preset=safety["preset"], safety_concept=safety["concept"],
                                named_prompts=[t.format(concept_text) for t in templates], guidance_scale=sampling["guidance_scale"],
                                unroll=settings["sld_unroll"], window=settings["sld_window"])
