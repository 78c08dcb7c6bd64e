"""The Task-Vector paper's control task (§5.1, protocols.md): every audited model draws images of fixed prompts
unrelated to any erased concept (the paper's six: two artists, two objects, two people), and the mean CLIP
similarity of each image to its own prompt says how much of the model's general ability the erasure kept.
Free text has no class, so these images are scored by CLIP alone, not by the evaluator (the control classes of
accuracy.csv are the other, class-labelled control)."""
from __future__ import annotations

import statistics

from ..atomic import write_json
from ..evaluation import values_by_prompt
from ..evaluators import clip_similarity
from ..images_io import load_image_set, save_grid, save_image_set
from ..progress import log as logger
from ..progress import setup_logging
from ..prompts import control_prompts
from ..runtime import configure_threads
from ..sampling import generate as sample
from ..seeding import image_seeds
from ._shared import load_guarded_model, start

NO_CLASS = -1  # the label of an image drawn from free text


def generate(*, manifest, images, grid, prompts, num_images, seed, guidance_scale, num_steps, batch_size, unet_patch=None,
             sampling_options=None, precision="float32", threads=1, log=None):
    """`num_images` images of `prompts` (in turn) on one audited model (its UNet patch and guards); image i uses seed
    `image_seeds(seed)[i]`, as in every other prompt set, so the models' images are paired."""
    device = start(threads, log)
    model, options = load_guarded_model(manifest, device, unet_patch, sampling_options, precision)
    texts = control_prompts(list(prompts), num_images)
    x = sample(model, texts, image_seeds(seed, num_images), guidance_scale, num_steps, batch_size,
               on_batch=lambda done, total: logger.info("control task: %d/%d", done, total), **options)
    save_image_set(images, x, [NO_CLASS] * num_images, texts, seed=seed, guidance_scale=guidance_scale)
    save_grid(grid, x)


def summarise(similarities: list[float], prompts: list[str]) -> dict:
    """The mean similarity over all images and per prompt (each with its image count)."""
    return dict(images=len(similarities), mean_prompt_similarity=statistics.fmean(similarities),
                prompt_similarity_by_prompt={p: dict(images=len(v), mean=statistics.fmean(v))
                                             for p, v in values_by_prompt(prompts, similarities).items()})


def score(*, images, metrics, clip, cells, threads=1, log=None):
    """Each image set's CLIP similarity to its own prompts (`clip`: the block evaluation.erasure_score.clip), one metrics
    file per cell ({concept, model}) with the per-image values, so the tables can give intervals."""
    setup_logging(log)
    configure_threads(threads)
    scorer = clip_similarity.load_prompt_similarity(clip)
    logger.info("control task scored by %s (sha256 %s)", scorer.fingerprint["name"], scorer.fingerprint["sha256"][:12])
    for image_path, metrics_path, cell in zip(images, metrics, cells, strict=True):
        x, _, meta = load_image_set(image_path)
        prompts = meta.get("prompts", [])
        sim = scorer.similarity(x, prompts).tolist()
        result = summarise(sim, prompts)
        logger.info("%s/%s: control task CLIP similarity %.4f over %d images", cell["concept"], cell["model"],
                    result["mean_prompt_similarity"], len(sim))
        write_json(metrics_path, {**result, "similarities": sim, "prompts": prompts, "similarity_evaluator": scorer.fingerprint,
                                  "guidance_scale": meta.get("guidance_scale"), **cell, "prompt_set": "control-prompts"})
