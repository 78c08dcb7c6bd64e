"""The task vector's preparatory step: fine-tune on the concept with empty captions (θ_ft; τ = θ_ft − θ).
Its own job, so that changing the α grid or rule re-runs only the α search (the erase job)."""
from __future__ import annotations

from ..components import save_unet_patch
from ..diffusion import LatentBank
from ..erasure.task_vector import finetune_on_concept
from ._shared import load_model, start


def run_finetune(*, manifest, concept_images, finetuned, steps, lr, batch_size, grad_clip, seed, checkpoint, ema_decay=None, threads=1,
                 log=None):
    device = start(threads, log)
    model = load_model(manifest, device)
    finetune_on_concept(model, LatentBank.from_image_set(model, concept_images), steps=steps, lr=lr, batch_size=batch_size,
                        grad_clip=grad_clip, seed=seed, checkpoint=checkpoint, ema_decay=ema_decay)
    save_unet_patch(model.unet.state_dict(), None, finetuned, metadata=dict(kind="fine-tuned on concept, empty captions"))
