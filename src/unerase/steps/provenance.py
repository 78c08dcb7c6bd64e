"""The provenance manifest of a run: config, git commit, package versions, seeds, weight hashes, hardware."""
from __future__ import annotations

from datetime import datetime, timezone

from ..atomic import read_json, write_json
from ..progress import log as logger
from ..progress import setup_logging
from ..provenance import local_model_dir, manifest


def run(*, record, base_manifest, run_config, weight_roles, workflow_dir, threads=1, log=None, **inputs):
    """`inputs`: the run's final outputs and its weight files, named by role (`weight_roles`: "evaluator",
    "erased/zero/esd-x", ...); inputs, so that the manifest is written after them."""
    setup_logging(log)
    weights = {"base model": local_model_dir(read_json(base_manifest)["path"]), **{role: inputs[role] for role in weight_roles}}
    data = manifest(config=run_config, weights=weights, workflow_dir=workflow_dir)
    data["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    logger.info("provenance: %d weight files hashed, commit %s", sum(len(f) for f in data["weights"].values()), data["git"]["commit"])
    write_json(record, data)
