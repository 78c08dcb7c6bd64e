# Thin adapter: the logic lives in unerase.steps.generate (unit-tested without Snakemake).
from unerase.steps.generate import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
