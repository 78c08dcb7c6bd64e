# Images of each target concept, the training data of erasure and inversion.


rule concept_images:
    input:
        manifest="results/base_model/manifest.json",
    output:
        images="results/concept_images/{concept}/images.safetensors",
        grid=report_item("results/concept_images/{concept}/grid.png", category="Concept images", subcategory="{concept}"),
    log:
        log_path("concept_images", "{concept}"),
    benchmark:
        benchmark_path("concept_images", "{concept}"),
    params:
        code=package_code("concept_images.py"),
        concept_text=concept_text,
        label=concept_label,
        templates=config["prompts"]["templates"],
        num_images=config["concept_images"]["count"],
        seed=config["seed"],
        real_images=lambda wc: config["real_images"].get(wc.concept),
        **config["sampling"],
    priority: PRIORITY["concept_images"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/concept_images.py"
