# Thin adapter: the logic lives in unerase.steps.erase_task_vector (unit-tested without Snakemake).
from unerase.steps.erase_task_vector import run_alpha
from unerase.steps.snakemake_adapter import call

call(run_alpha, snakemake)  # noqa: F821 - injected by Snakemake
