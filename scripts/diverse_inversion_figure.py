# Thin adapter: the logic lives in unerase.steps.figures and unerase.figures.
from unerase.steps.audit_figures import diverse_inversion
from unerase.steps.snakemake_adapter import call

call(diverse_inversion, snakemake)  # noqa: F821 - injected by Snakemake
