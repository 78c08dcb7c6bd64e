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
    # theta - alpha * tau over the alpha grid in the rule's order, each alpha scored on its name and
    # control images, stopping at the first that meets both criteria (it is the one the rule picks
    # from the whole grid). One job per concept: the model loads once and a job start costs ~9 s.
    input:
        manifest="results/base_model/manifest.json",
        finetuned="results/finetuned/{concept}/unet.safetensors",
        classifier="results/evaluator/classifier.safetensors",
    output:
        selected="results/erased/{concept}/tv/unet_patch.safetensors",
        choice="results/erased/{concept}/tv/alpha_choice.json",
        grid=report("results/erased/{concept}/tv/alpha_search.png", category="Task-vector alpha", subcategory="{concept}"),
    log:
        log_path("task_vector_alpha", "{concept}"),
    benchmark:
        benchmark_path("task_vector_alpha", "{concept}"),
    params:
        alphas=TV["alphas"],
        alpha_rule=TV["alpha_rule"],
        max_target_accuracy=TV["max_target_accuracy"],
        min_control_accuracy=TV["min_control_accuracy"],
        **GENERATION_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/task_vector_alpha.py"
