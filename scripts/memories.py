# Thin adapter: the logic lives in unerase.steps.memories and unerase.memories.
from unerase.steps.memories import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
