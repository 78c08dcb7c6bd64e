# Thin adapter: the logic lives in unerase.steps.concept_images (unit-tested without Snakemake).
from unerase.steps.concept_images import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
