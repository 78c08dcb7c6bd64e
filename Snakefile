# unerase: erase concepts from a text-to-image diffusion model, attack the erased models, measure
# how much of the concept comes back. Stages live in rules/*.smk; helpers in rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/base_model.smk"
include: "rules/concept_images.smk"
include: "rules/erasure.smk"
include: "rules/attacks.smk"
include: "rules/generation.smk"
include: "rules/probes.smk"
include: "rules/evaluation.smk"
include: "rules/control_task.smk"
include: "rules/figures.smk"
include: "rules/report.smk"
include: "rules/provenance.smk"
include: "rules/replicates.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
