# Thin adapter: the logic lives in unerase.steps.evaluate (unit-tested without Snakemake).
from unerase.steps.evaluate import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
