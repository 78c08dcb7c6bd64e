# Generations: each model's prompt sets in one job (the model loads once), fixed seeds, batched.


rule generate:
    # The audited models: the concept's name, each attack's embeddings or prompts, the other classes.
    # Attacks cheaper than a job (registry: in_generation) are learned here on the loaded model first.
    input:
        unpack(unet_patch),
        unpack(inline_attack_inputs),
        manifest="results/base_model/manifest.json",
        needed_artefacts=attack_artefacts,
    output:
        **generation_outputs("{model}", PROMPT_SETS),
        **inline_attack_outputs("{model}"),
    log:
        log_path("generate", "{concept}", "{model}"),
    benchmark:
        benchmark_path("generate", "{concept}", "{model}"),
    params:
        code=package_code("generate.py", lambda wc: guard_modules(wc.model) + INLINE_ATTACK_MODULES),
        prompt_sets=PROMPT_SETS,
        attack_sets=ATTACKS_RUN,
        artefacts=attack_artefact_paths,
        inline=INLINE_ATTACK_PARAMS,
        model_name="{model}",
        sampling_options=sampling_options,
        **GENERATION_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/generate.py"
