# Thin adapter: the logic lives in unerase.steps.finetune_on_concept (unit-tested without Snakemake).
from unerase.steps.finetune_on_concept import run_finetune
from unerase.steps.snakemake_adapter import call

call(run_finetune, snakemake)  # noqa: F821 - injected by Snakemake
