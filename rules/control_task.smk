# The Task-Vector paper's control task (§5.1): every audited model draws the fixed prompts of
# evaluation.control_task, unrelated to the erased concepts, and CLIP scores each image against its own
# prompt. Jobs of their own, so a change to the prompts re-runs these and nothing else. The digits default
# has none (its control is the other digits: the "control" prompt set); config/sd14.yaml has the paper's six.
# The base model's images depend on no concept (same prompts, same seeds), so one job draws them for every concept.


rule generate_control_task:
    input:
        unpack(unet_patch),
        manifest="results/base_model/manifest.json",
    output:
        images="results/generations/{concept}/{model}/control-prompts.safetensors",
        grid=_grid("{model}", "control-prompts"),
    wildcard_constraints:
        model=models_regex(METHODS),
    log:
        log_path("generate_control_task", "{concept}", "{model}"),
    benchmark:
        benchmark_path("generate_control_task", "{concept}", "{model}"),
    params:
        code=package_code("generate_control_task.py", lambda wc: guard_modules(wc.model)),
        prompts=CONTROL_PROMPTS,
        num_images=config["evaluation"]["images_per_cell"],
        seed=config["seed"],
        sampling_options=sampling_options,
        **config["sampling"],
    priority: PRIORITY["generate"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/generate_control_task.py"


use rule generate_control_task as generate_control_task_base with:
    input:
        manifest="results/base_model/manifest.json",
    output:
        images=BASE_CONTROL_TASK,
        grid=report_item(BASE_CONTROL_TASK.replace(".safetensors", ".png"), category="Generations", subcategory="every concept",
                         labels={"model": "base", "prompts": "control-prompts"}),
    log:
        log_path("generate_control_task", "base"),
    benchmark:
        benchmark_path("generate_control_task", "base"),
    params:
        code=package_code("generate_control_task.py"),
        prompts=CONTROL_PROMPTS,
        num_images=config["evaluation"]["images_per_cell"],
        seed=config["seed"],
        sampling_options={},
        **config["sampling"],


rule score_control_task:
    # One job per concept, as evaluate: CLIP loads once.
    localrule: SCORING_IS_LOCAL
    input:
        images=lambda wc: [control_task_images(wc.concept, m) for m in AUDITED_MODELS],
    output:
        metrics=[f"results/metrics/{{concept}}/{m}/control-prompts.json" for m in AUDITED_MODELS],
    log:
        log_path("score_control_task", "{concept}"),
    benchmark:
        benchmark_path("score_control_task", "{concept}"),
    params:
        code=package_code("score_control_task.py"),
        clip=control_task_clip(),
        cells=lambda wc: [{"concept": wc.concept, "model": m} for m in AUDITED_MODELS],
    threads: RES["threads"]
    resources:
        **light(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/score_control_task.py"


rule control_task_table:
    localrule: True
    input:
        records=[f"results/metrics/{c}/{m}/control-prompts.json" for c in CONCEPTS for m in AUDITED_MODELS],
    output:
        control_task_md="results/tables/control_task.md",
        control_task_csv="results/tables/control_task.csv",
    log:
        log_path("tables", "control_task"),
    params:
        code=package_code("control_task_table.py"),
        models=AUDITED_MODELS,
        method_labels=method_labels(),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/control_task_table.py"
