# Thin adapter: the logic lives in unerase.steps.provenance and unerase.provenance (unit-tested without Snakemake).
from unerase.steps.provenance import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
