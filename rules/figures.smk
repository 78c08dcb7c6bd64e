# Figures read from the erasure records and metrics: cheap, local.


localrules:
    alpha_tradeoff,


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
