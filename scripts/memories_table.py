# Thin adapter: the logic lives in unerase.steps.tables and unerase.tables.
from unerase.steps.tables import memories
from unerase.steps.snakemake_adapter import call

call(memories, snakemake)  # noqa: F821 - injected by Snakemake
