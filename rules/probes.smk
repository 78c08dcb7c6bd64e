# Latent-space probes that measure rather than attack (issue #8). The DDIM latent inversion is an attack
# (rules/attacks.smk); the memories probe reads seeds' likelihoods and reconstructions on every model.


rule memories:
    # Memories of forgotten concepts: one job per concept over every audited model (the base model
    # loads once; each model is its UNet patch and guards over it), like `evaluate`.
    input:
        unpack(memories_patches),
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
        reference_images="results/generations/{concept}/base/control.safetensors",  # R: the base model's other classes
        classifier="results/evaluator/classifier.safetensors",
    output:
        record="results/probes/{concept}/memories.json",
    log:
        log_path("memories", "{concept}"),
    benchmark:
        benchmark_path("memories", "{concept}"),
    params:
        models=AUDITED_MODELS,
        patches=memories_patch_list,
        guards=lambda wc: [sampling_options(SimpleNamespace(concept=wc.concept, model=m)) for m in AUDITED_MODELS],
        settings=config["probes"]["memories"],
        concept_text=concept_text,
        label=concept_label,
        templates=config["prompts"]["templates"],
        num_steps=config["sampling"]["num_steps"],
        batch_size=config["sampling"]["batch_size"],
        seed=config["seed"],
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/memories.py"
