# Thin adapter: the logic lives in unerase.steps.erase and unerase.erasure (unit-tested without Snakemake).
from unerase.steps.erase import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
