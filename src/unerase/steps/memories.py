"""Memories probe step: one concept, every audited model (unerase.memories). One job per concept, as
for evaluation: the base model loads once and each model is its UNet patch and guards over it."""
from __future__ import annotations

import copy

import torch

from ..atomic import write_json
from .. import evaluators
from ..images_io import load_image_set
from ..memories import gaussian_nll, prepare, probe_models
from ..progress import log as logger
from ._shared import audited_model, load_model, start


def captions_of(meta: dict, count: int, fallback: str) -> list[str]:
    """The prompts an image set was drawn with; `fallback` for user-supplied real images."""
    prompts = meta.get("prompts", [])
    return [p if i < len(prompts) and not p.startswith("real:") else fallback for i, p in enumerate(prompts[:count])] + \
        [fallback] * max(0, count - len(prompts))


def recognises(scorer, label: int):
    """`images -> (N,) bool`: where the evaluator counts the concept's label a hit, as in every cell's accuracy."""
    def concept_score(x):
        return scorer.score(x, torch.full((len(x),), label)).hit
    return concept_score


def run(*, manifest, concept_images, reference_images, record, models, patches, guards, settings, concept_text,
        label, templates, num_steps, batch_size, seed, evaluator, evaluator_settings, classifier=None, checkpoint=None, threads=1,
        log=None, **patch_inputs):
    """`models[i]` is audited with UNet patch `patches[i]` ("" for none) and guard options `guards[i]`;
    `patch_inputs` are the same patches as the job's named inputs (what makes Snakemake wait for them). A
    reconstruction shows the concept where the configured `evaluator` (unerase.evaluators, with `evaluator_settings`
    and the digit CNN's weights `classifier`; the rule passes no min_confidence) counts it a hit: its top-1, as in
    every cell's accuracy (ResNet-50's top-1 probability may be far below 0.5 over 1,000 classes). `checkpoint`: where
    the job keeps what it has done (the VAE fit, each model's results), so a killed job resumes there."""
    device = start(threads, log)
    base = load_model(manifest, device)
    standard = copy.deepcopy(base.unet)
    n = settings["num_images"]
    images, _, meta = load_image_set(concept_images)
    reference, _, ref_meta = load_image_set(reference_images)
    if len(images) < n or len(reference) < n:
        raise ValueError(f"probes.memories.num_images {n}: {concept_images} has {len(images)} images and {reference_images} "
                         f"{len(reference)} (concept_images.count, evaluation.images_per_cell)")
    concept_captions = captions_of(meta, n, templates[0].format(concept_text))
    reference_captions = captions_of(ref_meta, n, "")
    normal = torch.randn((settings["num_normal"], *base.latent_shape), generator=torch.Generator().manual_seed(seed))
    normal_nll = gaussian_nll(normal)

    scorer = evaluators.load(evaluator, evaluator_settings, classifier)

    concept_score = recognises(scorer, label)

    def prepare_inputs(many_latents):
        return prepare(base, concept_images=images[:n], concept_captions=concept_captions, reference_images=reference[:n],
                       reference_captions=reference_captions, normal_nll=normal_nll, settings=settings, many_latents=many_latents)

    def logged(model, r):
        logger.info("memories %s/%s: PSNR %.1f dB, concept %.0f %%, relative distance %.2f, distinct seeds %.1f of %d", concept_text,
                    model, sum(r["psnr"]) / n, 100 * r["concept_reconstructed"], r["relative_distance"],
                    r["many_seeds"]["mean_distinct"], r["many_seeds"]["seeds_per_image"])

    # with the job's code and input files (unerase.checkpoint.JOB): a killed job's checkpoint is resumed only by that job
    fingerprint = dict(models=models, patches=patches, guards=guards, settings=settings, concept=concept_text, label=label,
                       num_steps=num_steps, batch_size=batch_size, seed=seed, evaluator=evaluator, evaluator_settings=evaluator_settings)
    results = probe_models(prepare_inputs, lambda patch, options: audited_model(base, standard, patch, options), models=models,
                           patches=patches, guards=guards, settings=settings, num_steps=num_steps, batch_size=batch_size,
                           concept_score=concept_score, seed=seed, checkpoint=checkpoint, fingerprint=fingerprint, on_model=logged)
    write_json(record, dict(concept=concept_text, settings=dict(settings), num_steps=num_steps, seed=seed, models=results,
                            evaluator=scorer.fingerprint,  # the "concept in reconstructions" decision's scorer
                            notes="seeds by ReNoise inversion with each image's caption at guidance 1; reconstructions under the "
                                  "model's guards; PSNR of identical images capped at 99 dB"))
