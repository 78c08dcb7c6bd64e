"""Concept Inversion step: textual inversion on a (possibly erased) model."""
from __future__ import annotations

from ..diffusion import LatentBank
from ..inversion import invert, save_learned_embeds
from ._shared import load_model, start


def run(*, manifest, concept_images, embeds, token, templates, num_vectors, init_text, lr, batch_size, steps, seed, checkpoint,
        unet_patch=None, threads=1, log=None):
    device = start(threads, log)
    model = load_model(manifest, device, unet_patch)
    bank = LatentBank.from_image_set(model, concept_images)
    vectors = invert(model, bank, token=token, templates=templates, num_vectors=num_vectors,
                     init_text=init_text, lr=lr, batch_size=batch_size, steps=steps, seed=seed, checkpoint=checkpoint)
    save_learned_embeds(embeds, token, vectors)
