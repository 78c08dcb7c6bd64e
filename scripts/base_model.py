# Thin adapter: the logic lives in unerase.steps.base_model (unit-tested without Snakemake).
from unerase.steps.base_model import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
