# Thin adapter: the logic lives in unerase.steps.erase_task_vector (unit-tested without Snakemake).
from unerase.steps.erase_task_vector import run_alpha_search
from unerase.steps.snakemake_adapter import call

call(run_alpha_search, snakemake)  # noqa: F821 - injected by Snakemake
