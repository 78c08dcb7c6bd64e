# Metrics: the evaluator scores every generated cell; tables gather them.


rule evaluate:
    # One job per concept scores all of its cells: the evaluator loads once, and a metric-only
    # change (evaluation.*) re-runs these cheap jobs and the tables, nothing upstream.
    localrule: SCORING_IS_LOCAL
    input:
        unpack(evaluator_inputs),
        images=lambda wc: [f"results/generations/{wc.concept}/{m}/{s}.safetensors" for m, s in cells_of(wc.concept)],
        scoring_files=scoring_files,
    output:
        metrics=[f"results/metrics/{{concept}}/{m}/{s}.json" for m, s in cells_of(None)],
    log:
        log_path("evaluate", "{concept}"),
    benchmark:
        benchmark_path("evaluate", "{concept}"),
    params:
        code=package_code("evaluate.py", lambda wc: [EVALUATOR_MODULE]),
        evaluator=EVALUATOR,
        settings=evaluator_settings(),
        erasure_score=erasure_score_settings(),
        fid=fid_settings(),
        classes=config["classes"],
        cells=lambda wc: [{"concept": wc.concept, "model": m, "prompt_set": s} for m, s in cells_of(wc.concept)],
    threads: RES["threads"]
    resources:
        **light(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/evaluate.py"


rule tables:
    localrule: True
    input:
        metrics=metric_files(),
    output:
        long_csv=report_item("results/tables/accuracy.csv", category="Tables"),
        paper_md="results/tables/erasure_vs_inversion.md",
        paper_csv=report_item("results/tables/erasure_vs_inversion.csv", category="Tables"),
        attacks_md="results/tables/attacks.md",
        attacks_csv=report_item("results/tables/attacks.csv", category="Tables"),
        modalities_md="results/tables/modalities.md",
        modalities_csv=report_item("results/tables/modalities.csv", category="Tables"),
        erasure_score_csv=report_item("results/tables/erasure_score.csv", category="Tables"),
        quality_md="results/tables/quality.md",
        quality_csv=report_item("results/tables/quality.csv", category="Tables"),
        **({"unlearn_diff_md": "results/tables/unlearn_diff.md",
            "unlearn_diff_csv": report_item("results/tables/unlearn_diff.csv", category="Tables")} if "unlearn-diff" in ATTACKS_RUN else {}),
    log:
        log_path("tables", "tables"),
    benchmark:
        benchmark_path("tables", "tables"),
    params:
        code=package_code("tables.py"),
        methods=METHODS,
        method_labels=method_labels(),
        prompt_sets=PROMPT_SETS,
        attacks={a: {"label": ATTACKS[a].label, "access": ATTACKS[a].access, "modality": ATTACKS[a].modality} for a in ATTACKS_RUN},
        erasure_score_by=config["evaluation"]["erasure_score"]["score"],
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/tables.py"


rule memories_table:
    localrule: True
    input:
        records=expand("results/probes/{concept}/memories.json", concept=CONCEPTS),
    output:
        memories_md="results/tables/memories.md",
        memories_csv="results/tables/memories.csv",
    log:
        log_path("tables", "memories"),
    params:
        code=package_code("memories_table.py"),
        concepts=CONCEPTS,
        methods=METHODS,
        method_labels=method_labels(),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/memories_table.py"


rule safety_grid_table:
    localrule: True
    input:
        records=expand("results/probes/{concept}/safety_grid.json", concept=CONCEPTS),
        accuracy="results/tables/accuracy.csv",
    output:
        grid_md="results/tables/safety_grid.md",
        grid_csv="results/tables/safety_grid.csv",
    log:
        log_path("tables", "safety_grid"),
    params:
        code=package_code("safety_grid_table.py"),
        concepts=CONCEPTS,
        models=SAFETY_GRID_MODELS,
        method_labels=method_labels(),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/safety_grid_table.py"
