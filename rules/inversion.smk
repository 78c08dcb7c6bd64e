# Attacks that learn an input bringing the concept back. Concept Inversion: textual inversion of
# new tokens on each (erased) model.
CI = config["attacks"]["concept_inversion"]


rule concept_inversion:
    input:
        unpack(unet_patch),
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
    output:
        embeds="results/inversion/{concept}/{model}/learned_embeds.safetensors",
    log:
        log_path("concept_inversion", "{concept}", "{model}"),
    benchmark:
        benchmark_path("concept_inversion", "{concept}", "{model}"),
    params:
        token=inversion_token,
        templates=config["prompts"]["templates"],
        seed=config["seed"],
        checkpoint=checkpoint_path("concept_inversion", "{concept}", "{model}"),
        **CI,
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/unerase.yaml"
    script:
        "../scripts/concept_inversion.py"
