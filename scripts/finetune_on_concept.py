# Thin adapter: the logic lives in unerase.steps.erase_task_vector (unit-tested without Snakemake).
from unerase.steps.erase_task_vector import run_finetune
from unerase.steps.snakemake_adapter import call

call(run_finetune, snakemake)  # noqa: F821 - injected by Snakemake
