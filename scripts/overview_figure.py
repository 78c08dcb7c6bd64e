# Thin adapter: the logic lives in unerase.steps.figures and unerase.figures.
from unerase.steps.audit_figures import overview
from unerase.steps.snakemake_adapter import call

call(overview, snakemake)  # noqa: F821 - injected by Snakemake
