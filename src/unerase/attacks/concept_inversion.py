"""Concept Inversion (Pham et al. 2024), the white-box attack: textual inversion of K new tokens on
the audited model's own weights (the textual-inversion code: unerase.inversion). On a stack with an
SLD guard and `through_sld`, the objective unrolls SLD's guidance (unerase.attacks.sld_inversion)."""
from __future__ import annotations

from ..diffusion import LatentBank
from ..inversion import invert, save_learned_embeds
from .job import AttackJob
from .sld_inversion import objective_for


def run(job: AttackJob) -> dict:
    s = job.settings
    bank = LatentBank.from_image_set(job.model, job.inputs["concept_images"], flip=s.get("flip", False))
    # the training captions: the attack's own (sd14: diffusers' imagenet_templates_small, as CCE), else prompts.templates
    templates = s.get("templates") or job.templates
    objective = objective_for(job.model, job.guards, templates, job.concept_text, s, job.sampling)
    # through SLD, CCE's sld/train.sh runs its own batch and rate (1 x grad-accum 4, 5e-3 scaled: 0.02); its unrolled
    # graphs multiply the memory a row takes, so the SLD objective has keys of its own
    lr, batch_size = (s.get("sld_lr", s["lr"]), s.get("sld_batch_size", s["batch_size"])) if objective else (s["lr"], s["batch_size"])
    vectors = invert(job.model, bank, token=job.token, templates=templates, num_vectors=s["num_vectors"], init_text=s["init_text"],
                     lr=lr, batch_size=batch_size, steps=s["steps"], seed=job.seed, checkpoint=job.checkpoint,
                     objective=objective, fingerprint=objective.fingerprint() if objective else None,
                     precision=s.get("precision", "float32"), gradient_checkpointing=s.get("gradient_checkpointing", False),
                     weight_decay=s.get("weight_decay", 0.0), data={k: s[k] for k in ("templates", "flip") if s.get(k)})
    save_learned_embeds(job.artefact, job.token, vectors)
    return dict(token=job.token, num_vectors=len(vectors), objective=objective.fingerprint() if objective else "denoising")
