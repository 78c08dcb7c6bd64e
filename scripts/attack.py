# Thin adapter: the logic lives in unerase.steps.attack and unerase.attacks (unit-tested without Snakemake).
from unerase.steps.attack import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
