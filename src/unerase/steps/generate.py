"""Generation step: a model's prompt sets, M images each with fixed seeds."""
from __future__ import annotations

from ..images_io import save_grid, save_image_set
from ..atomic import read_json
from .. import attacks
from ..attacks import artefact_kind
from ..attacks.job import AttackJob
from ..attacks.latent_inversion import read_inverted_latents
from ..inversion import load_token_set, own_text_side
from ..progress import log as logger
from ..prompts import build_prompts
from ..sampling import generate
from ..seeding import image_seeds
from ._shared import load_guarded_model, start
from .attack import learn


def run(*, manifest, images, grids, prompt_sets, concept_text, label, classes, templates, num_images, seed, guidance_scale,
        num_steps, batch_size, attack_sets=(), artefacts=(), needed_artefacts=(), inline=None, inline_artefacts=(), inline_records=(),
        model_name="", concept_images=None, unet_patch=None, precision="float32", sampling_options=None, guidance_by_set=None, threads=1,
        log=None):
    """Generate each prompt set in `prompt_sets` with one loaded model; image i uses seed `image_seeds(seed)[i]`
    in every set and model, so cells are paired across models. `attack_sets[i]` is a prompt set whose
    tokens or prompts are in `artefacts[i]` (learned embeddings or a prompts JSON). `sampling_options`
    are an inference-time guard's (unerase.erasure.guards), e.g. a negative prompt. `inline` ({attack:
    {settings, sampling, guards, resume_from}}) are attacks learned here first, on this model (through its guards
    where `guards` are given: Concept Inversion through SLD), each writing
    `inline_artefacts[i]` and `inline_records[i]` (`needed_artefacts`: the other attacks' files, what
    makes Snakemake wait for them). `guidance_by_set`: {prompt set: guidance scale} for sets drawn at a scale of their
    own (Concept Inversion on Forget-Me-Not, CCE); the others at `guidance_scale`."""
    device = start(threads, log)
    model, options = load_guarded_model(manifest, device, unet_patch, sampling_options, precision)
    if inline:
        # attacks learn on float32 weights, as in an attack job, also where this job samples in float16 / bfloat16
        # (sd14's float16 UNet met float32 latents); their files are read back below like an attack job's. A float32
        # copy lives only while they learn (~5 GB of SD 1.4 on the GPU that sampling does not need).
        learner = model if precision == "float32" else load_guarded_model(manifest, device, unet_patch, sampling_options)[0]
        learn_inline(learner, inline, inline_artefacts, inline_records, concept_text=concept_text, label=label,
                     templates=templates, seed=seed, concept_images=concept_images, model_name=model_name)
        if learner is not model:
            del learner
            if device.type == "cuda":
                import gc

                import torch

                gc.collect()  # a reference cycle left by the learning would otherwise keep the copy until later
                torch.cuda.empty_cache()
    artefact_of = dict(zip(attack_sets, artefacts, strict=True))
    placeholders = {}  # artefact path -> its tokens' text: a file two sets share is loaded once
    drawn = {}         # (prompts, seeds file) -> images: two sets with the same inputs (white-box and transfer on the base) draw once
    for prompt_set, images_path, grid_path in zip(prompt_sets, images, grids, strict=True):
        placeholder = attack_prompts = latents = None
        path = artefact_of.get(prompt_set)
        kind = artefact_kind(path) if path else None
        if kind == "prompts":
            attack_prompts = read_json(path)["prompts"]
        elif kind == "embeds":
            if path not in placeholders:
                placeholders[path] = load_token_set(model, path, as_token=f"<{concept_text.replace(' ', '_')}-{prompt_set}>")
            placeholder = placeholders[path]
        elif kind == "latents":
            latents, attack_prompts = load_inverted_latents(path, num_images)
        count = num_images if latents is None else len(latents)
        prompts, labels = build_prompts(prompt_set, templates, concept_text, label, classes, count, placeholder, attack_prompts)
        scale = (guidance_by_set or {}).get(prompt_set, guidance_scale)
        key = (tuple(prompts), path if kind == "latents" else None, scale)
        if key not in drawn:
            drawn[key] = generate(model, prompts, image_seeds(seed, count), scale, num_steps, batch_size,
                                  on_batch=lambda done, total, s=prompt_set: logger.info("generate %s: %d/%d", s, done, total),
                                  latents=latents, **options)
        x = drawn[key]
        save_image_set(images_path, x, labels, prompts, seed=seed, guidance_scale=scale)
        save_grid(grid_path, x)


def learn_inline(learner, inline: dict, artefacts, records, *, concept_text, label, templates, seed, concept_images, model_name):
    """Learn each of `inline`'s attacks ({attack: {settings, sampling, guards, resume_from}}) on `learner`, writing its
    artefact and record."""
    for (attack, spec), artefact, record in zip(inline.items(), artefacts, records, strict=True):
        # an attack adding tokens (embeddings) gets its own text side, as with an attack job's (the generation then
        # registers the learned file under the prompt set's token name); the others leave the model as they found it
        attacked = own_text_side(learner) if attacks.get(attack).artefact == "embeds" else learner
        job = AttackJob(model=attacked, attack=attack, settings=dict(spec["settings"]), concept_text=concept_text, label=label,
                        templates=list(templates), seed=seed, artefact=artefact, inputs=dict(concept_images=concept_images),
                        sampling=dict(spec["sampling"]), guards=dict(spec.get("guards") or {}), checkpoint=spec.get("resume_from"))
        learn(job, record, model_name)
        logger.info("learned %s on %s", attack, model_name)


def load_inverted_latents(path: str, num_images: int):
    """The first `num_images` inverted seeds of a latent-inversion artefact, and the prompt they go with."""
    latents, prompt = read_inverted_latents(path)
    latents = latents[:num_images]
    return latents, [prompt] * len(latents)
