# Thin adapter: the logic lives in unerase.steps.tables and unerase.tables.
from unerase.steps.tables import safety_grid
from unerase.steps.snakemake_adapter import call

call(safety_grid, snakemake)  # noqa: F821 - injected by Snakemake
