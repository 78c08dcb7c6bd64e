# Figures read from the erasure records and metrics: cheap, local.


localrules:
    alpha_tradeoff,
    memories_figure,
    safety_grid_figure,


rule alpha_tradeoff:
    # tv-es: every alpha's Erasure Score and control accuracy, the chosen one marked (TV paper Fig. 4, 12).
    input:
        records=expand("results/erased/{concept}/tv-es/erasure.json", concept=CONCEPTS),
    output:
        figure=report("results/figures/tv_es_alpha.png", category="Erasure"),
    log:
        log_path("figures", "tv_es_alpha"),
    params:
        code=package_code("figures.py"),
        concepts=CONCEPTS,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/figures.py"


rule memories_figure:
    # Memories of forgotten concepts (Fig. 2): the NLL of the concept's and the reference images' seeds
    # against N(0, I) samples, one panel per model.
    input:
        record="results/probes/{concept}/memories.json",
    output:
        figure=report("results/figures/memories_nll_{concept}.png", category="Probes", subcategory="{concept}"),
    log:
        log_path("figures", "memories_nll_{concept}"),
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("memories_figure.py"),
    script:
        "../scripts/memories_figure.py"


rule safety_grid_figure:
    # Task-Vector paper Fig. 3: the best grid prompt's probability against the complexity class, per model.
    input:
        records=expand("results/probes/{concept}/safety_grid.json", concept=CONCEPTS),
    output:
        figure=report("results/figures/safety_grid.png", category="Probes"),
    log:
        log_path("figures", "safety_grid"),
    params:
        code=package_code("safety_grid_figure.py"),
        concepts=CONCEPTS,
        method_labels=method_labels(),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/safety_grid_figure.py"
