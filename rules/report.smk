# What the report shows besides the images (issue #9): every Markdown table as an HTML page (the
# Snakemake report shows HTML inline, .md only as a download), and the run's efficiency table, built
# from every job's benchmark file once the audit is done.


rule efficiency_table:
    localrule: True
    input:
        done=audit_outputs(),
    output:
        efficiency_csv="results/tables/efficiency.csv",
        efficiency_md="results/tables/efficiency.md",
    log:
        log_path("efficiency_table", "efficiency"),
    params:
        code=package_code("efficiency.py"),
        methods=sorted({weight_part(m) for m in METHODS} - {None}),
        attacks=sorted({learned_by(a).name for a in ATTACKS_RUN}),
        models=sorted(set(AUDITED_MODELS) | {weight_part(m) for m in METHODS} - {None}),
        concepts=CONCEPTS,
        inline_attacks=INLINE_ATTACKS,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/efficiency.py"


rule report_page:
    localrule: True
    input:
        markdown="results/tables/{table}.md",
    output:
        page=report_item("results/report/{table}.html", category="Tables", labels={"table": "{table}"}),
    wildcard_constraints:
        table="|".join(REPORT_TABLES),
    log:
        log_path("report_page", "{table}"),
    params:
        code=package_code("report_page.py"),
        title=lambda wildcards: REPORT_TABLES[wildcards.table],
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_page.py"
