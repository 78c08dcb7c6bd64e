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
    bank = LatentBank.from_image_set(job.model, job.inputs["concept_images"])
    objective = objective_for(job.model, job.guards, job.templates, job.concept_text, s, job.sampling)
    vectors = invert(job.model, bank, token=job.token, templates=job.templates, num_vectors=s["num_vectors"], init_text=s["init_text"],
                     lr=s["lr"], batch_size=s["batch_size"], steps=s["steps"], seed=job.seed, checkpoint=job.checkpoint,
                     objective=objective, fingerprint=objective.fingerprint() if objective else None,
                     precision=s.get("precision", "float32"), gradient_checkpointing=s.get("gradient_checkpointing", False))
    save_learned_embeds(job.artefact, job.token, vectors)
    return dict(token=job.token, num_vectors=len(vectors), objective=objective.fingerprint() if objective else "denoising")
