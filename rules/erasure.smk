# Erasure methods. Each writes results/erased/{concept}/{model}/unet_patch.safetensors: the UNet
# parameters it changed, applied over the base model by every later step.
ESD = config["erasure"]["esd"]


rule erase_esd:
    input:
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
    output:
        patch="results/erased/{concept}/{method}/unet_patch.safetensors",
    log:
        log_path("erase_esd", "{concept}", "{method}"),
    benchmark:
        benchmark_path("erase_esd", "{concept}", "{method}"),
    params:
        method="{method}",
        concept_text=concept_text,
        templates=config["prompts"]["templates"],
        seed=config["seed"],
        checkpoint=checkpoint_path("erase_esd", "{concept}", "{method}"),
        **ESD,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/erase_esd.py"


rule finetune_on_concept:
    input:
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
    output:
        finetuned="results/finetuned/{concept}/unet.safetensors",
    log:
        log_path("finetune_on_concept", "{concept}"),
    benchmark:
        benchmark_path("finetune_on_concept", "{concept}"),
    params:
        steps=TV["finetune_steps"],
        lr=TV["lr"],
        batch_size=TV["batch_size"],
        grad_clip=TV["grad_clip"],
        seed=config["seed"],
        checkpoint=checkpoint_path("finetune_on_concept", "{concept}"),
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/finetune_on_concept.py"


rule task_vector_alpha:
    # One job per alpha: theta - alpha * tau, then the name and control images that decide the
    # alpha. Negation and generation share the job: the patch is seconds of work, a job start ~9 s.
    input:
        manifest="results/base_model/manifest.json",
        finetuned="results/finetuned/{concept}/unet.safetensors",
    output:
        patch="results/erased/{concept}/tv-a{alpha}/unet_patch.safetensors",
        **generation_outputs("tv-a{alpha}", ALPHA_GRID_SETS),
    log:
        log_path("task_vector_alpha", "{concept}", "a{alpha}"),
    benchmark:
        benchmark_path("task_vector_alpha", "{concept}", "a{alpha}"),
    params:
        alpha="{alpha}",
        prompt_sets=ALPHA_GRID_SETS,
        **GENERATION_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/task_vector_alpha.py"


rule select_task_vector_alpha:
    # Judged on argmax accuracy of the alpha-grid generations, independent of
    # evaluation.min_confidence, so a metric-only change never re-runs the attacks on "tv".
    input:
        patches=expand("results/erased/{{concept}}/tv-a{alpha}/unet_patch.safetensors", alpha=ALPHAS),
        name_images=expand("results/generations/{{concept}}/tv-a{alpha}/name.safetensors", alpha=ALPHAS),
        control_images=expand("results/generations/{{concept}}/tv-a{alpha}/control.safetensors", alpha=ALPHAS),
        classifier="results/evaluator/classifier.safetensors",
    output:
        selected="results/erased/{concept}/tv/unet_patch.safetensors",
        choice="results/erased/{concept}/tv/alpha_choice.json",
    log:
        log_path("select_task_vector_alpha", "{concept}"),
    benchmark:
        benchmark_path("select_task_vector_alpha", "{concept}"),
    params:
        alphas=ALPHAS,
        max_target_accuracy=TV["max_target_accuracy"],
        min_control_accuracy=TV["min_control_accuracy"],
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/select_task_vector_alpha.py"
