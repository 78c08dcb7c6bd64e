# Thin adapter: the logic lives in unerase.steps.figures and unerase.figures.
from unerase.steps.crr_grid import crr_grid
from unerase.steps.snakemake_adapter import call

call(crr_grid, snakemake)  # noqa: F821 - injected by Snakemake
