# Attacks (the registry in unerase.attacks): each learns an input that may bring the concept back —
# embeddings for new tokens or hard prompts — on the model named by {model} (the audited weights for a
# white-box attack, or the whole stack when it learns through an SLD guard; "base" for a black-box one), written to results/attacks/{concept}/{model}/{attack}/
# with attack.json, what it was run with. Two generic rules, one per kind of artefact.


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
        **ATTACK_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/attack.py"


rule attack_prompts:
    input:
        unpack(attack_inputs),
        manifest="results/base_model/manifest.json",
    output:
        artefact="results/attacks/{concept}/{model}/{attack}/prompts.json",
        record="results/attacks/{concept}/{model}/{attack}/attack.json",
    wildcard_constraints:
        attack=attack_names("prompts"),
    log:
        log_path("attack", "{attack}", "{concept}", "{model}"),
    benchmark:
        benchmark_path("attack", "{attack}", "{concept}", "{model}"),
    params:
        **ATTACK_PARAMS,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/attack.py"
