# Latent-space probes that measure rather than attack (issue #8). The DDIM latent inversion is an attack
# (rules/attacks.smk); the memories probe reads seeds' likelihoods and reconstructions on every model, the
# unconditional-safety grid searches a low-dimensional prompt space on the models of probes.safety_grid.models.


rule memories:
    # Memories of forgotten concepts: one job per concept over every audited model (the base model
    # loads once; each model is its UNet patch and guards over it), like `evaluate`.
    input:
        unpack(probe_patches(AUDITED_MODELS)),
        unpack(evaluator_inputs),
        manifest="results/base_model/manifest.json",
        concept_images="results/concept_images/{concept}/images.safetensors",
        reference_images="results/generations/{concept}/base/control.safetensors",  # R: the base model's other classes
    output:
        record="results/probes/{concept}/memories.json",
    log:
        log_path("memories", "{concept}"),
    benchmark:
        benchmark_path("memories", "{concept}"),
    params:
        code=package_code("memories.py", lambda wc: [m for model in AUDITED_MODELS for m in guard_modules(model)] + [
            EVALUATOR_MODULE]),
        evaluator=EVALUATOR,
        # a reconstruction shows the concept where the evaluator's top-1 is it; without evaluation.min_confidence, so a
        # threshold change re-runs no probe that takes hours on SD 1.4
        evaluator_settings=search_evaluator_settings(),
        models=AUDITED_MODELS,
        patches=probe_patch_list(AUDITED_MODELS),
        guards=probe_guards(AUDITED_MODELS),
        settings=config["probes"]["memories"],
        concept_text=concept_text,
        label=concept_label,
        templates=config["prompts"]["templates"],
        num_steps=config["sampling"]["num_steps"],
        batch_size=config["sampling"]["batch_size"],
        seed=config["seed"],
        checkpoint=checkpoint_path("memories", "{concept}"),
    priority: PRIORITY["probe"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/memories.py"


rule safety_grid:
    # The Task-Vector paper's unconditional-safety grid (§3, Fig. 3): one job per concept over the models
    # of probes.safety_grid.models; the grid itself depends only on the base model's token table.
    input:
        unpack(probe_patches(SAFETY_GRID_MODELS)),
        unpack(evaluator_inputs),
        manifest="results/base_model/manifest.json",
    output:
        record="results/probes/{concept}/safety_grid.json",
    log:
        log_path("safety_grid", "{concept}"),
    benchmark:
        benchmark_path("safety_grid", "{concept}"),
    params:
        code=package_code("safety_grid.py", lambda wc: [m for model in SAFETY_GRID_MODELS for m in guard_modules(model)] + [
            EVALUATOR_MODULE]),
        evaluator=EVALUATOR,
        evaluator_settings=evaluator_settings(),  # its threshold included: a hit at a grid point is a hit of the metrics
        models=SAFETY_GRID_MODELS,
        patches=probe_patch_list(SAFETY_GRID_MODELS),
        guards=probe_guards(SAFETY_GRID_MODELS),
        settings={k: v for k, v in config["probes"]["safety_grid"].items() if k != "models"},
        label=concept_label,
        class_names=[c.replace("_", " ") for c in config["classes"]],  # as concept_text names them
        num_steps=config["sampling"]["num_steps"],
        guidance_scale=config["sampling"]["guidance_scale"],
        batch_size=config["sampling"]["batch_size"],
        seed=config["seed"],
    priority: PRIORITY["probe"]
    threads: RES["threads"]
    resources:
        **heavy(),
    conda:
        "../envs/diffusion.yaml"
    script:
        "../scripts/safety_grid.py"
