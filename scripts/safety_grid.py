# Thin adapter: the logic lives in unerase.steps.safety_grid and unerase.safety_grid.
from unerase.steps.safety_grid import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
