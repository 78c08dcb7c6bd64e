# Thin adapter: the logic lives in unerase.steps.control_task.
from unerase.steps.control_task import generate
from unerase.steps.snakemake_adapter import call

call(generate, snakemake)  # noqa: F821 - injected by Snakemake
