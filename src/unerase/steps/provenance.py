"""The provenance manifest of a run: config, git commit, package versions, seeds, weight hashes, hardware."""
from __future__ import annotations

from datetime import datetime, timezone

from ..atomic import read_json, write_json
from ..progress import log as logger
from ..progress import setup_logging
from ..provenance import local_model_dir, manifest, scorers


def run(*, record, base_manifest, run_config, weight_roles, workflow_dir, metrics=(), threads=1, log=None, **inputs):
    """`inputs`: the run's final outputs and its weight files, named by role (`weight_roles`: "evaluator",
    "erased/zero/esd-x", ...); inputs, so that the manifest is written after them. `metrics`: every metric file, whose
    fingerprints name the scorers (weights path, sha256) that computed the results."""
    setup_logging(log)
    weights = {"base model": local_model_dir(read_json(base_manifest)["path"]), **{role: inputs[role] for role in weight_roles}}
    data = manifest(config=run_config, weights=weights, workflow_dir=workflow_dir, scored_by=scorers([read_json(m) for m in metrics]))
    data["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    logger.info("provenance: %d weight files hashed, %d scorers, commit %s", sum(len(f) for f in data["weights"].values()),
                len(data["scorers"]), data["git"]["commit"])
    write_json(record, data)
