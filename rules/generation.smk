# Generations: each model's prompt sets in one job (the model loads once), fixed seeds, batched.


rule generate:
    # The audited models: the concept's name, each attack's embeddings or prompts, the other classes.
    input:
        unpack(unet_patch),
        manifest="results/base_model/manifest.json",
        artefacts=attack_artefacts,
    output:
        **generation_outputs("{model}", PROMPT_SETS),
    log:
        log_path("generate", "{concept}", "{model}"),
    benchmark:
        benchmark_path("generate", "{concept}", "{model}"),
    params:
        prompt_sets=PROMPT_SETS,
        attack_sets=ATTACKS_RUN,
        sampling_options=sampling_options,
        **GENERATION_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/generate.py"
