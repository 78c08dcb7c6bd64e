# The run's provenance manifest (issue #10): config, git commit, package versions, seeds, the sha256 of
# every model, evaluator and attack weight the results came from, and the hardware.


rule provenance:
    localrule: True
    input:
        unpack(provenance_inputs),
        base_manifest="results/base_model/manifest.json",
        results=audit_outputs(),
        metrics=metric_files() + (
            [f"results/metrics/{c}/{m}/control-prompts.json" for c in CONCEPTS for m in AUDITED_MODELS] if CONTROL_PROMPTS else []),
    output:
        record="results/provenance.json",
    log:
        log_path("provenance", "provenance"),
    params:
        code=package_code("provenance.py"),
        run_config=config,
        weight_roles=list(provenance_inputs(None)),  # the paths come from the inputs (a replicate's are prefixed)
        workflow_dir=workflow.basedir,
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/provenance.py"
