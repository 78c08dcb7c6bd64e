"""Concept Inversion (Pham et al. 2024), the white-box attack: textual inversion of K new tokens on
the audited model's own weights (the textual-inversion code: unerase.inversion)."""
from __future__ import annotations

from ..diffusion import LatentBank
from ..inversion import invert, save_learned_embeds
from .job import AttackJob


def run(job: AttackJob) -> dict:
    s = job.settings
    bank = LatentBank.from_image_set(job.model, job.inputs["concept_images"])
    vectors = invert(job.model, bank, token=job.token, templates=job.templates, num_vectors=s["num_vectors"], init_text=s["init_text"],
                     lr=s["lr"], batch_size=s["batch_size"], steps=s["steps"], seed=job.seed, checkpoint=job.checkpoint)
    save_learned_embeds(job.artefact, job.token, vectors)
    return dict(token=job.token, num_vectors=len(vectors))
