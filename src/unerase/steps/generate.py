"""Generation step: a model's prompt sets, M images each with fixed seeds."""
from __future__ import annotations

import copy

from ..components import load_unet_patch
from ..images_io import save_grid, save_image_set
from ..atomic import read_json
from ..inversion import load_token_set
from ..progress import log as logger
from ..prompts import build_prompts
from ..sampling import generate
from ._shared import load_model, start


def run(*, manifest, images, grids, prompt_sets, concept_text, label, classes, templates, num_images, seed, guidance_scale,
        num_steps, batch_size, attack_sets=(), artefacts=(), unet_patch=None, precision="float32", sampling_options=None, threads=1,
        log=None):
    """Generate each prompt set in `prompt_sets` with one loaded model; image i uses seed `seed + i`
    in every set and model, so cells are paired across models. `attack_sets[i]` is a prompt set whose
    tokens or prompts are in `artefacts[i]` (learned embeddings or a prompts JSON). `sampling_options`
    are an inference-time guard's (unerase.erasure.guards), e.g. a negative prompt."""
    device = start(threads, log)
    options = dict(sampling_options or {})
    model = load_model(manifest, device, None, precision)
    if unet_patch:
        if "irece" in options:  # IRECE reads the un-erased model's attention
            options["standard_unet"] = copy.deepcopy(model.unet)
        load_unet_patch(model.unet, unet_patch)
    artefact_of = dict(zip(attack_sets, artefacts, strict=True))
    placeholders = {}  # artefact path -> its tokens' text: a file two sets share is loaded once
    drawn = {}         # prompts -> images: two sets with the same prompts (e.g. white-box and transfer on the base) draw once
    for prompt_set, images_path, grid_path in zip(prompt_sets, images, grids, strict=True):
        placeholder = attack_prompts = None
        if path := artefact_of.get(prompt_set):
            if path.endswith(".json"):
                attack_prompts = read_json(path)["prompts"]
            else:
                if path not in placeholders:
                    placeholders[path] = load_token_set(model, path, as_token=f"<{concept_text.replace(' ', '_')}-{prompt_set}>")
                placeholder = placeholders[path]
        prompts, labels = build_prompts(prompt_set, templates, concept_text, label, classes, num_images, placeholder, attack_prompts)
        key = tuple(prompts)
        if key not in drawn:
            drawn[key] = generate(model, prompts, [seed + i for i in range(num_images)], guidance_scale, num_steps, batch_size,
                                  on_batch=lambda done, total, s=prompt_set: logger.info("generate %s: %d/%d", s, done, total),
                                  **options)
        x = drawn[key]
        save_image_set(images_path, x, labels, prompts, seed=seed)
        save_grid(grid_path, x)
