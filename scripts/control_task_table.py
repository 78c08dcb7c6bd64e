# Thin adapter: the logic lives in unerase.steps.tables and unerase.tables.
from unerase.steps.tables import control_task
from unerase.steps.snakemake_adapter import call

call(control_task, snakemake)  # noqa: F821 - injected by Snakemake
