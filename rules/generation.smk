# Generations: each model's prompt sets in one job (the model loads once), fixed seeds, batched.


rule generate:
    # The audited models: the concept's name, the Concept-Inversion tokens, the other classes.
    input:
        unpack(unet_patch),
        manifest="results/base_model/manifest.json",
        embeds=inversion_embeds,
    output:
        **generation_outputs("{model}", PROMPT_SETS),
    log:
        log_path("generate", "{concept}", "{model}"),
    benchmark:
        benchmark_path("generate", "{concept}", "{model}"),
    params:
        prompt_sets=PROMPT_SETS,
        sampling_options=sampling_options,
        **GENERATION_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/generate.py"
