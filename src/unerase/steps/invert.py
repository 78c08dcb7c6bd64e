"""Concept Inversion step: textual inversion on a (possibly erased) model."""
from __future__ import annotations

from ..inversion import invert, save_learned_embeds
from ._shared import concept_bank, load_model, start


def run(*, manifest, concept_images, embeds, token, templates, num_vectors, init_text, lr, batch_size, steps, seed, checkpoint,
        unet_patch=None, threads=1, log=None):
    device = start(threads, log)
    model = load_model(manifest, device, unet_patch)
    vectors = invert(model, concept_bank(model, concept_images), token=token, templates=templates, num_vectors=num_vectors,
                     init_text=init_text, lr=lr, batch_size=batch_size, steps=steps, seed=seed, checkpoint=checkpoint)
    save_learned_embeds(embeds, token, vectors)
