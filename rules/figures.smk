# Figures read from the erasure records and metrics: cheap, local.


localrules:
    alpha_tradeoff,
    memories_figure,


rule alpha_tradeoff:
    # tv-es: every alpha's Erasure Score and control accuracy, the chosen one marked (TV paper Fig. 4, 12).
    input:
        records=expand("results/erased/{concept}/tv-es/erasure.json", concept=CONCEPTS),
    output:
        figure=report("results/figures/tv_es_alpha.png", category="Figures"),
    log:
        log_path("figures", "tv_es_alpha"),
    params:
        concepts=CONCEPTS,
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/figures.py"


rule memories_figure:
    # Memories of forgotten concepts (Fig. 2): the NLL of the concept's and the reference images' seeds
    # against N(0, I) samples, one panel per model.
    input:
        record="results/probes/{concept}/memories.json",
    output:
        figure=report("results/figures/memories_nll_{concept}.png", category="Figures"),
    log:
        log_path("figures", "memories_nll_{concept}"),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/memories_figure.py"
