# Thin adapter: the logic lives in unerase.steps.select_alpha (unit-tested without Snakemake).
from unerase.steps.select_alpha import run_select
from unerase.steps.snakemake_adapter import call

call(run_select, snakemake)  # noqa: F821 - injected by Snakemake
