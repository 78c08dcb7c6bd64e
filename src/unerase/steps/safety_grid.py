"""Unconditional-safety grid step: one concept, the models named in probes.safety_grid.models
(unerase.safety_grid). One job per concept: the base model loads once and each model is its UNet
patch and guards over it, as for the memories probe."""
from __future__ import annotations

import copy

import torch

from ..atomic import write_json
from .. import evaluators
from ..inversion import add_tokens, placeholder_tokens
from ..progress import log as logger
from ..safety_grid import complexity_class, embeddings, name_embeddings, probe_model, subspace, union_of
from ..seeding import derived
from ._shared import audited_model, load_model, start

TOKEN = "<safety-grid>"


def run(*, manifest, record, models, patches, guards, settings, label, class_names, num_steps, guidance_scale, batch_size,
        seed, evaluator, evaluator_settings, classifier=None, threads=1, log=None, **patch_inputs):
    """`models[i]` is probed with UNet patch `patches[i]` ("" for none) and guard options `guards[i]`;
    `patch_inputs` are the same patches as the job's named inputs (what makes Snakemake wait for them). Images are
    scored by the configured `evaluator` (unerase.evaluators, with `evaluator_settings`, its threshold included, and
    the digit CNN's weights `classifier`)."""
    device = start(threads, log)
    base = load_model(manifest, device)
    standard = copy.deepcopy(base.unet)
    table = base.text_encoder.get_input_embeddings().weight.detach().cpu()
    names = name_embeddings(base.tokenizer, table, class_names)
    mean, axes, radius = subspace(names, settings["dims"])
    classes, sampled = {}, {}
    for levels in settings["levels"]:
        classes[levels], exhaustive = complexity_class(settings["dims"], levels, settings["max_points"], derived(seed, levels))
        sampled[levels] = None if exhaustive else derived(seed, levels)
    points, members = union_of(classes)
    vectors = embeddings(points, mean, axes, radius)
    tokens = placeholder_tokens(TOKEN, min(batch_size, len(points) * settings["screening_images"]))
    add_tokens(base, TOKEN, torch.zeros(len(tokens), table.shape[1]))  # rows written per batch (safety_grid.draw)
    logger.info("safety grid: d=%d, L in %s, %d distinct points, %d images per point, %d per best point", settings["dims"],
                settings["levels"], len(points), settings["screening_images"], settings["confirm_images"])

    scorer = evaluators.load(evaluator, evaluator_settings, classifier)

    def concept_probability(x):
        return scorer.score(x, torch.full((len(x),), label)).probability

    def is_concept(x):
        return scorer.score(x, torch.full((len(x),), label)).hit

    results = {}
    for model, patch, options in zip(models, patches, guards, strict=True):
        components, options = audited_model(base, standard, patch, options)
        results[model] = probe_model(
            components, tokens, vectors, members, screening_images=settings["screening_images"], confirm_images=settings["confirm_images"],
            seed=seed, concept_probability=concept_probability, is_concept=is_concept, template=settings["template"],
            guidance_scale=guidance_scale, num_steps=num_steps, guard_options=options,
            on_batch=lambda done, total, m=model: logger.info("safety grid %s: %d/%d images", m, done, total))
        logger.info("safety grid %s: best-prompt probability %s", model,
                    ", ".join(f"L={k} {v['probability']:.2f}" for k, v in results[model].items()))
    coordinates = ((names - mean) @ axes.T) / radius  # the class names in grid units (their residual off the subspace is dropped)
    write_json(record, dict(
        concept_label=label, settings=dict(settings), num_steps=num_steps, guidance_scale=guidance_scale, seed=seed, models=results,
        evaluator=scorer.fingerprint,  # the scorer behind every probability
        classes={str(L): dict(points=len(classes[L]), exhaustive=sampled[L] is None, sample_seed=sampled[L]) for L in classes},
        points=[[round(float(v), 6) for v in p] for p in points], members={str(L): m for L, m in members.items()},
        class_coordinates={n: [round(float(v), 4) for v in c] for n, c in zip(class_names, coordinates)},
        explained_variance=float((((names - mean) @ axes.T) ** 2).sum() / ((names - mean) ** 2).sum()),
        notes="token embedding = mean + sum_i c_i radius_i axis_i over the first d principal axes of the class names' embeddings; "
              "best point per L by the screening images' mean concept probability, probability = share of fresh images "
              "classified as the concept"))
