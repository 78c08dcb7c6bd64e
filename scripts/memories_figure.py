# Thin adapter: the logic lives in unerase.steps.figures and unerase.figures.
from unerase.steps.figures import memories
from unerase.steps.snakemake_adapter import call

call(memories, snakemake)  # noqa: F821 - injected by Snakemake
