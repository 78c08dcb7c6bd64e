# Thin adapter: the logic lives in unerase.steps.erase_esd (unit-tested without Snakemake).
from unerase.steps.erase_esd import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
