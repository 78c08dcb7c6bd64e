# Thin adapter: the logic lives in unerase.steps.train_embedded (unit-tested without Snakemake).
from unerase.steps.train_embedded import run_vae
from unerase.steps.snakemake_adapter import call

call(run_vae, snakemake)  # noqa: F821 - injected by Snakemake
