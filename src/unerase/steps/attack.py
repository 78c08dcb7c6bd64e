"""The generic attack step: any registered attack, one concept, learned on one model; writes the
attack's artefact (embeddings or prompts) and a record of what it was run with."""
from __future__ import annotations

import time

from .. import attacks
from ..atomic import write_json
from ..attacks.job import AttackJob
from ._shared import load_model, start


def run(*, manifest, artefact, record, attack, settings, concept_text, label, templates, seed, checkpoint, learned_on,
        guards=None, sampling=None, unet_patch=None, threads=1, log=None, **inputs):
    """`inputs`: the extra named inputs the attack declares in the registry (`needs`). `guards`: the
    sampler options of the stack's guards the attack learns through (an SLD guard), with `sampling`."""
    device = start(threads, log)
    spec = attacks.get(attack)
    missing = sorted(set(spec.needs) - set(inputs))
    if missing:
        raise ValueError(f"attack {attack}: the rule did not pass the inputs {missing} that the attack declares")
    job = AttackJob(model=load_model(manifest, device, unet_patch), attack=attack, settings=dict(settings), concept_text=concept_text,
                    label=label, templates=list(templates), seed=seed, artefact=artefact, inputs=inputs, checkpoint=checkpoint,
                    guards=dict(guards or {}), sampling=dict(sampling or {}))
    learn(job, record, learned_on)


def learn(job: AttackJob, record: str, learned_on: str) -> None:
    """Run the attack of `job` (it writes `job.artefact`), then its record: what it was run with and how long it took."""
    spec = attacks.get(job.attack)
    t0 = time.perf_counter()
    info = attacks.implementation(job.attack).run(job)
    write_json(record, dict(attack=job.attack, label=spec.label, access=spec.access, source=spec.source, concept=job.concept_text,
                            learned_on=learned_on, settings=dict(job.settings), seconds=round(time.perf_counter() - t0, 1), **info))
