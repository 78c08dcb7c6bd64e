"""Calls a step's `run` with a Snakemake job's named inputs, outputs, params, threads and log."""
from __future__ import annotations


# Params that only trigger reruns (the fingerprint of the package code a rule runs: unerase.code_version);
# the steps do not read them.
RERUN_TRIGGERS = ("code",)


def _named(namedlist) -> dict:
    return {name: namedlist[name] for name in namedlist.keys()}


def call(run, snakemake) -> None:
    from ..checkpoint import tag_job

    # a resumable job's checkpoints also carry its code and its inputs' size and time (unerase.checkpoint.JOB)
    tag_job(code=_named(snakemake.params).get("code"), inputs=list(snakemake.input))
    kwargs = {}
    params = {k: v for k, v in _named(snakemake.params).items() if k not in RERUN_TRIGGERS}
    for named in (_named(snakemake.input), _named(snakemake.output), params):
        for key, value in named.items():
            if key in kwargs:
                raise KeyError(f"'{key}' names both an input/output and a param of rule {snakemake.rule}")
            kwargs[key] = value
    run(threads=snakemake.threads, log=snakemake.log[0] if snakemake.log else None, **kwargs)
