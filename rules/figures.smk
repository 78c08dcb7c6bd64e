# Figures read from the erasure records and metrics: cheap, local.


rule overview_figure:
    # One concept's audit at a glance (CCE Fig. 1, TV paper Fig. 5): a row per model, a column per prompt set,
    # each cell's first images and its accuracy.
    localrule: True
    input:
        images=lambda wc: [f"results/generations/{wc.concept}/{m}/{s}.safetensors" for m, s in cells_of(wc.concept)],
        metrics=lambda wc: [f"results/metrics/{wc.concept}/{m}/{s}.json" for m, s in cells_of(wc.concept)],
    output:
        figure=report_item("results/figures/overview_{concept}.png", category="Overview", subcategory="{concept}"),
    log:
        log_path("figures", "overview_{concept}"),
    params:
        code=package_code("overview_figure.py"),
        concept="{concept}",
        cells=lambda wc: [{"model": m, "prompt_set": s} for m, s in cells_of(wc.concept)],
        model_labels={"base": "base", **method_labels()},
        set_labels=prompt_set_labels(),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/overview_figure.py"


rule alpha_tradeoff:
    # tv-es: every alpha's Erasure Score and control accuracy, the chosen one marked (TV paper Fig. 4, 12).
    localrule: True
    input:
        records=expand("results/erased/{concept}/tv-es/erasure.json", concept=CONCEPTS),
    output:
        figure=report_item("results/figures/tv_es_alpha.png", category="Erasure"),
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
    localrule: True
    input:
        record="results/probes/{concept}/memories.json",
    output:
        figure=report_item("results/figures/memories_nll_{concept}.png", category="Probes", subcategory="{concept}"),
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
    localrule: True
    input:
        records=expand("results/probes/{concept}/safety_grid.json", concept=CONCEPTS),
    output:
        figure=report_item("results/figures/safety_grid.png", category="Probes"),
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


rule diverse_inversion_figure:
    # TV paper §4.1: how far Diverse Inversion's embeddings lie from the name, and what each draws on each model.
    localrule: True
    input:
        record="results/attacks/{concept}/base/diverse-inversion/attack.json",
        metrics=lambda wc: [f"results/metrics/{wc.concept}/{m}/diverse-inversion.json" for m in AUDITED_MODELS],
    output:
        figure=report_item("results/figures/diverse_inversion_{concept}.png", category="Attacks", subcategory="{concept}"),
    log:
        log_path("figures", "diverse_inversion_{concept}"),
    params:
        code=package_code("diverse_inversion_figure.py"),
        concept="{concept}",
        models=AUDITED_MODELS,
        model_labels={"base": "base", **method_labels()},
        erasure_score_by=config["evaluation"]["erasure_score"]["score"],  # the concept score the Erasure Score reads
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/diverse_inversion_figure.py"


rule crr_grid_figure:
    # M-ErasureBench's Concept Reproduction Rate grid (models by input modality and access) as a heat map.
    localrule: True
    input:
        long_csv="results/tables/accuracy.csv",
    output:
        figure=report_item("results/figures/crr_grid.png", category="Overview"),
    log:
        log_path("figures", "crr_grid"),
    params:
        code=package_code("crr_grid_figure.py"),
        methods=METHODS,
        method_labels={"base": "base", **method_labels()},
        attacks={a: {"label": ATTACKS[a].label, "access": ATTACKS[a].access, "modality": ATTACKS[a].modality} for a in ATTACKS_RUN},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/crr_grid_figure.py"
