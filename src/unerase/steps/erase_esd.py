"""ESD erasure step: writes the changed UNet parameters as a patch."""
from __future__ import annotations

from ..components import save_unet_patch
from ..esd import erase_esd
from ._shared import concept_bank, load_model, start


def run(*, manifest, concept_images, patch, method, concept_text, templates, iterations, lr, negative_guidance, batch_size,
        xt_source, ddim_steps, start_guidance, seed, checkpoint, threads=1, log=None):
    device = start(threads, log)
    model = load_model(manifest, device)
    bank = concept_bank(model, concept_images) if xt_source == "concept_images" else None
    names = erase_esd(model, bank, method=method, templates=templates, concept_text=concept_text, iterations=iterations, lr=lr,
                      negative_guidance=negative_guidance, batch_size=batch_size, xt_source=xt_source, ddim_steps=ddim_steps,
                      start_guidance=start_guidance, seed=seed, checkpoint=checkpoint)
    save_unet_patch(model.unet.state_dict(), names, patch, metadata=dict(method=method, concept=concept_text))
