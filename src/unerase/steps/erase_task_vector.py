"""Task-vector erasure steps: fine-tune on the concept, negate τ at each α (with its name and control images)."""
from __future__ import annotations

from safetensors.torch import load_file

from ..atomic import read_json
from ..components import load_base_unet_state, save_unet_patch
from ..task_vector import finetune_on_concept, negate, task_vector
from . import generate
from ._shared import concept_bank, load_model, start


def run_finetune(*, manifest, concept_images, finetuned, steps, lr, batch_size, grad_clip, seed, checkpoint, threads=1, log=None):
    device = start(threads, log)
    model = load_model(manifest, device)
    finetune_on_concept(model, concept_bank(model, concept_images), steps=steps, lr=lr, batch_size=batch_size,
                        grad_clip=grad_clip, seed=seed, checkpoint=checkpoint)
    save_unet_patch(model.unet.state_dict(), None, finetuned, metadata=dict(kind="fine-tuned on concept, empty captions"))


def run_negate(*, manifest, finetuned, patch, alpha, threads=1, log=None):
    start(threads, log)
    base = load_base_unet_state(read_json(manifest)["path"])
    erased = negate(base, task_vector(base, load_file(finetuned)), float(alpha))
    save_unet_patch(erased, None, patch, metadata=dict(kind="task vector", alpha=alpha))


def run_alpha(*, manifest, finetuned, patch, alpha, images, grids, threads=1, log=None, **generation):
    """θ − α·τ as a patch, then the name and control images of that model (they decide the α)."""
    run_negate(manifest=manifest, finetuned=finetuned, patch=patch, alpha=alpha, threads=threads, log=log)
    generate.run(manifest=manifest, images=images, grids=grids, unet_patch=patch, threads=threads, log=log, **generation)
