# Thin adapter: the logic lives in unerase.steps.seed_summary and unerase.seed_summary.
from unerase.steps.seed_summary import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
