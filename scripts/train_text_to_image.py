# Thin adapter: the logic lives in unerase.steps.train_embedded (unit-tested without Snakemake).
from unerase.steps.train_embedded import run_text_to_image
from unerase.steps.snakemake_adapter import call

call(run_text_to_image, snakemake)  # noqa: F821 - injected by Snakemake
