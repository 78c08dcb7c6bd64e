# Erasure methods (the registry in unerase.erasure). Each writes
# results/erased/{concept}/{method}/unet_patch.safetensors, the UNet parameters it changed, applied over
# the base model by every later step, and erasure.json, what it decided (e.g. the task vector's alpha).


rule erase:
    # Every registered method (unerase.erasure.METHODS): its params are its own config block and the
    # sections it declares, so a change re-runs that method's jobs only.
    input:
        unpack(erasure_inputs),
        manifest="results/base_model/manifest.json",
    output:
        patch="results/erased/{concept}/{method}/unet_patch.safetensors",
        record="results/erased/{concept}/{method}/erasure.json",
    log:
        log_path("erase", "{concept}", "{method}"),
    benchmark:
        benchmark_path("erase", "{concept}", "{method}"),
    params:
        code=package_code("erase.py", lambda wc: [f"unerase.erasure.{erasure_method(wc).module}"] + (
            [EVALUATOR_MODULE] if "evaluator" in erasure_method(wc).needs else [])),
        method="{method}",
        settings=lambda wc: config["erasure"][erasure_method(wc).config],
        shared=lambda wc: {key: config_value(key) for key in erasure_method(wc).uses},
        concept_text=concept_text,
        label=concept_label,
        classes=config["classes"],
        templates=config["prompts"]["templates"],
        seed=config["seed"],
        checkpoint=checkpoint_path("erase", "{concept}", "{method}"),
        evaluator=erasure_evaluator,
    priority: PRIORITY["erase"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/erase.py"


rule finetune_on_concept:
    # The task vector's preparatory stage, its own job so that an alpha change re-runs only the search.
    input:
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
    output:
        finetuned=stored("results/finetuned/{concept}/unet.safetensors", "finetuned"),
    log:
        log_path("finetune_on_concept", "{concept}"),
    benchmark:
        benchmark_path("finetune_on_concept", "{concept}"),
    params:
        code=package_code("finetune_on_concept.py"),
        steps=TV["finetune_steps"],
        lr=TV["lr"],
        batch_size=TV["batch_size"],
        grad_clip=TV["grad_clip"],
        ema_decay=TV.get("ema_decay"),
        seed=config["seed"],
        checkpoint=checkpoint_path("finetune_on_concept", "{concept}"),
    priority: PRIORITY["upstream"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/finetune_on_concept.py"
