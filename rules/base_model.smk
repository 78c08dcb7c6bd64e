# The base model: either the embedded digits model trained here, or SD 1.4 (hub id / folder).
# Also the embedded evaluator (a digit classifier).

EMB = config["embedded"]


rule train_vae:
    output:
        vae=directory("results/embedded/vae"),
    log:
        log_path("train_vae", "vae"),
    benchmark:
        benchmark_path("train_vae", "vae"),
    params:
        code=package_code("train_vae.py"),
        steps=EMB["vae"]["steps"],
        batch_size=EMB["vae"]["batch_size"],
        lr=EMB["vae"]["lr"],
        kl_weight=EMB["vae"]["kl_weight"],
        seed=config["seed"],
        checkpoint=checkpoint_path("train_vae", "vae"),
    priority: PRIORITY["base"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/train_vae.py"


rule train_text_to_image:
    input:
        vae="results/embedded/vae",
    output:
        model=directory("results/embedded/model"),
    log:
        log_path("train_text_to_image", "model"),
    benchmark:
        benchmark_path("train_text_to_image", "model"),
    params:
        code=package_code("train_text_to_image.py"),
        templates=config["prompts"]["templates"],
        seed=config["seed"],
        checkpoint=checkpoint_path("train_text_to_image", "model"),
        **EMB["text_to_image"],
    priority: PRIORITY["base"]
    threads: RES["base_model_threads"]  # it runs alone in the DAG (nothing else needs it done yet)
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/train_text_to_image.py"


rule base_model:
    localrule: True
    priority: PRIORITY["base"]
    input:
        unpack(base_model_inputs),
    output:
        manifest="results/base_model/manifest.json",
    log:
        log_path("base_model", "manifest"),
    benchmark:
        benchmark_path("base_model", "manifest"),
    params:
        code=package_code("base_model.py"),
        source=config["base_model"]["source"],
        path=config["base_model"]["path"],
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/base_model.py"


rule train_classifier:
    output:
        weights="results/evaluator/classifier.safetensors",
        report="results/evaluator/classifier.json",
    log:
        log_path("train_classifier", "classifier"),
    benchmark:
        benchmark_path("train_classifier", "classifier"),
    params:
        code=package_code("train_classifier.py"),
        seed=config["seed"],
        **EMB["classifier"],
    priority: PRIORITY["base"]
    threads: RES["threads"]
    resources:
        **light(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/train_classifier.py"
