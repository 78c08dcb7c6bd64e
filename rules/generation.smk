# Generations: each model's prompt sets in one job (the model loads once), fixed seeds, batched.
# White-box attacks flagged in_generation (Concept Inversion, DDIM latent inversion) are learned in the generation
# job of the model they are learned on, first: one job start and one model load fewer per model (issue #5). A guard
# stack's job samples its weights' artefacts, so it waits for that model's job. Outputs are fixed per rule, so each
# group of models learning the same attacks is one rule (common.smk: generation_groups).


for _name, _inline, _models in generation_groups():

    rule:
        # The audited models: the concept's name, each attack's embeddings or prompts, the other classes.
        name:
            _name
        input:
            unpack(unet_patch),
            unpack(inline_attack_inputs(_inline)),
            manifest="results/base_model/manifest.json",
            needed_artefacts=attack_artefacts,
        output:
            **generation_outputs("{model}", PROMPT_SETS),
            **inline_attack_outputs("{model}", _inline),
        wildcard_constraints:
            model=models_regex(_models),
        log:
            log_path("generate", "{concept}", "{model}"),
        benchmark:
            benchmark_path("generate", "{concept}", "{model}"),
        params:
            code=package_code("generate.py", lambda wc, inline=_inline: guard_modules(wc.model) + inline_attack_modules(inline)),
            prompt_sets=PROMPT_SETS,
            attack_sets=ATTACKS_RUN,
            artefacts=attack_artefact_params,  # the same paths as inputs: each attack set's artefact
            inline=inline_attack_params(_inline),
            model_name="{model}",
            sampling_options=sampling_options,
            guidance_by_set=guidance_by_set,
            **GENERATION_PARAMS,
        priority: PRIORITY["generate"]
        threads: RES["threads"]
        resources:
            **heavy(),
        conda:
            "../envs/diffusion.yaml"
        script:
            "../scripts/generate.py"
