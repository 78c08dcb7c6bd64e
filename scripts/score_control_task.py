# Thin adapter: the logic lives in unerase.steps.control_task.
from unerase.steps.control_task import score
from unerase.steps.snakemake_adapter import call

call(score, snakemake)  # noqa: F821 - injected by Snakemake
