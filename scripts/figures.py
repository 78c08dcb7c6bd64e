# Thin adapter: the logic lives in unerase.steps.figures and unerase.figures.
from unerase.steps.figures import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
