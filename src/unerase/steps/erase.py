"""The generic erasure step: any registered method, one concept; writes the UNet patch and a record."""
from __future__ import annotations

from .. import erasure
from ..atomic import write_json
from ..components import save_unet_patch
from ..erasure.job import ErasureJob
from ._shared import load_model, start


def run(*, manifest, patch, record, method, settings, shared, concept_text, label, classes, templates, seed, checkpoint,
        evaluator=None, threads=1, log=None, **inputs):
    """`inputs`: the extra named inputs the method declares in the registry (`needs`; need "evaluator" is the
    `evaluator` param, {name, settings}, with the digit CNN's weights as input "classifier" where the workflow trains them)."""
    device = start(threads, log)
    spec = erasure.get(method)
    missing = sorted(set(spec.needs) - set(inputs) - ({"evaluator"} if evaluator else set()))
    if missing:
        raise ValueError(f"erase {method}: the rule did not pass the inputs {missing} that the method declares")
    job = ErasureJob(model=load_model(manifest, device), method=method, settings=dict(settings), concept_text=concept_text, label=label,
                     classes=dict(classes), templates=list(templates), seed=seed, manifest=manifest, inputs=inputs,
                     shared=dict(shared), checkpoint=checkpoint, evaluator=dict(evaluator or {}))
    result = erasure.implementation(method).erase(job)
    save_unet_patch(job.model.unet.state_dict(), result.changed, patch, metadata=dict(method=method, concept=concept_text))
    write_json(record, dict(method=method, label=spec.label, source=spec.source, concept=concept_text, settings=dict(settings),
                            changed_tensors=len(result.changed), **result.info))
