# Thin adapter: the logic lives in unerase.steps.report and unerase.report_pages.
from unerase.steps.report import run
from unerase.steps.snakemake_adapter import call

call(run, snakemake)  # noqa: F821 - injected by Snakemake
