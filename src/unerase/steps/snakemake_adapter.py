"""Calls a step's `run` with a Snakemake job's named inputs, outputs, params, threads and log."""
from __future__ import annotations


def _named(namedlist) -> dict:
    return {name: namedlist[name] for name in namedlist.keys()}


def call(run, snakemake) -> None:
    kwargs = {}
    for part in (snakemake.input, snakemake.output, snakemake.params):
        for key, value in _named(part).items():
            if key in kwargs:
                raise KeyError(f"'{key}' names both an input/output and a param of rule {snakemake.rule}")
            kwargs[key] = value
    run(threads=snakemake.threads, log=snakemake.log[0] if snakemake.log else None, **kwargs)
