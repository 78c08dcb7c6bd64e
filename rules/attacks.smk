# Attacks (the registry in unerase.attacks): each learns an input that may bring the concept back —
# embeddings for new tokens, hard prompts or inverted seeds — on the model named by {model} (the audited weights for a
# white-box attack, or the whole stack when it learns through an SLD guard; "base" for a black-box one), written to results/attacks/{concept}/{model}/{attack}/
# with attack.json, what it was run with. One generic rule per kind of artefact.


rule attack_embeddings:
    input:
        unpack(attack_inputs),
        manifest="results/base_model/manifest.json",
    output:
        artefact="results/attacks/{concept}/{model}/{attack}/learned_embeds.safetensors",
        record="results/attacks/{concept}/{model}/{attack}/attack.json",
    wildcard_constraints:
        attack=attack_names("embeds"),
    log:
        log_path("attack", "{attack}", "{concept}", "{model}"),
    benchmark:
        benchmark_path("attack", "{attack}", "{concept}", "{model}"),
    params:
        code=package_code("attack.py", attack_modules),
        **ATTACK_PARAMS,
    priority: PRIORITY["upstream"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/attack.py"


# The same job for the other kinds of artefact: only the output's file name differs.
use rule attack_embeddings as attack_prompts with:
    output:
        artefact="results/attacks/{concept}/{model}/{attack}/prompts.json",
        record="results/attacks/{concept}/{model}/{attack}/attack.json",
    wildcard_constraints:
        attack=attack_names("prompts"),


use rule attack_embeddings as attack_latents with:
    output:
        artefact="results/attacks/{concept}/{model}/{attack}/inverted_latents.safetensors",
        record="results/attacks/{concept}/{model}/{attack}/attack.json",
    wildcard_constraints:
        attack=attack_names("latents"),


# Inline attacks (learned in generation jobs) on a model with no generation job: the weights of a stack audited without them.
if STANDALONE_INLINE:

    use rule attack_embeddings as attack_embeddings_standalone with:
        wildcard_constraints:
            attack=standalone_inline_names("embeds"),
            model=models_regex(STANDALONE_MODELS),

    use rule attack_latents as attack_latents_standalone with:
        wildcard_constraints:
            attack=standalone_inline_names("latents"),
            model=models_regex(STANDALONE_MODELS),

    use rule attack_prompts as attack_prompts_standalone with:
        wildcard_constraints:
            attack=standalone_inline_names("prompts"),
            model=models_regex(STANDALONE_MODELS),
