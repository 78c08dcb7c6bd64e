# Thin adapter: the logic lives in unerase.steps.efficiency and unerase.efficiency.
from unerase.steps.efficiency import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
