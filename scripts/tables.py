# Thin adapter: the logic lives in unerase.steps.tables (unit-tested without Snakemake).
from unerase.steps.tables import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
