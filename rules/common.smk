# Helpers shared by the rules: config validation, wildcard vocabularies, model resolution.
import os
import re
from types import SimpleNamespace

import yaml
from snakemake.common.configfile import load_configfile
from snakemake.utils import validate

from unerase.attacks import ATTACKS, artefact_path, learned_by  # the registries (no torch import)
from unerase.code_version import fingerprint as code_fingerprint
from unerase.config_layers import keyed_mappings, replace_keyed_mappings
from unerase.evaluators import EVALUATORS
from unerase.erasure import METHODS as ERASURE_METHODS
from unerase.erasure import parse_stack, stack_label
from unerase.erasure.guard_options import sampling_options as guard_sampling_options


# An overriding config (--configfile, --config) replaces the mappings keyed by names (classes, ...) instead of merging
# into them: sd14.yaml's ImageNet classes had joined the ten digits (unerase.config_layers).
with open(os.path.join(workflow.basedir, "config", "schema.yaml")) as _schema:
    replace_keyed_mappings(config, [load_configfile(str(f)) for f in workflow.config_settings.configfiles]
                           + [dict(workflow.config_settings.config or {})], keyed_mappings(yaml.safe_load(_schema)))
validate(config, schema="../config/schema.yaml")
# `--config seeds=[0,1]` arrives as strings (Snakemake parses a command-line list with YAML's BaseLoader).
config["seeds"] = [int(s) for s in config.get("seeds", [])]
if len(set(config["seeds"])) != len(config["seeds"]):
    raise ValueError(f"config key 'seeds': a seed is listed twice in {config['seeds']}")

# The folder this run lives in: "" for the main run, "replicates/seed-N/" for a replicate (rules/replicates.smk).
# Snakemake's module prefix moves every input, output, log and benchmark of a replicate, not its params.
RUN_DIR = workflow.modifier.path_modifier.prefix or ""


def _check_concepts():
    unknown = [c for c in config["concepts"] if c not in config["classes"]]
    if unknown:
        raise ValueError(f"config key 'concepts': {unknown} not in config key 'classes'")
    for c in config["real_images"]:
        if c not in config["concepts"]:
            raise ValueError(f"config key 'real_images.{c}': not one of the concepts {config['concepts']}")


def _check_imports():
    paths = config["erasure"]["import"]["paths"]
    for c in paths:
        if c not in config["concepts"]:
            raise ValueError(f"config key 'erasure.import.paths.{c}': not one of the concepts {config['concepts']}")
    if "import" in config["erasure"]["methods"]:
        for c in config["concepts"]:
            if c not in paths:
                raise ValueError(f"config key 'erasure.import.paths.{c}': missing; method 'import' needs the erased UNet of every "
                                 f"concept (a diffusers UNet folder, a .safetensors state dict or an ESD-style .pt)")


def _check_methods():
    for m in config["erasure"]["methods"]:
        try:
            parse_stack(m)
        except ValueError as err:
            raise ValueError(f"config key 'erasure.methods': {err}") from None
    # maps keyed by a name the config chooses: a misspelt key would be ignored without a word
    for c in config["erasure"]["ablating"]["anchors"]:
        if c not in config["classes"]:
            raise ValueError(f"config key 'erasure.ablating.anchors.{c}': not one of the classes {list(config['classes'])}")
    for attack in ("concept_inversion",):
        weight_methods = [name for name, spec in ERASURE_METHODS.items() if not spec.is_guard]
        for m in config["attacks"][attack].get("guidance_scale_by_method") or {}:
            if m not in weight_methods:  # a guard's cells take their weight method's scale
                raise ValueError(f"config key 'attacks.{attack}.guidance_scale_by_method.{m}': not a weight method; known: "
                                 f"{', '.join(weight_methods)}")


def _check_attacks():
    for name in config["attacks"]["run"]:
        if name not in ATTACKS:
            raise ValueError(f"config key 'attacks.run': unknown attack '{name}'; known: {', '.join(ATTACKS)}")
    if len(set(config["attacks"]["run"])) != len(config["attacks"]["run"]):
        raise ValueError("config key 'attacks.run': an attack is named twice")
    for low, high in config["attacks"]["diverse_inversion"]["bands"]:
        if not -1 <= low <= high <= 1:
            raise ValueError(f"config key 'attacks.diverse_inversion.bands': [{low}, {high}] is not a cosine band (-1 <= low <= high <= 1)")
    latents = config["attacks"]["latent_inversion"]["num_images"]
    if any(ATTACKS[a].artefact == "latents" for a in config["attacks"]["run"]) and latents > config["concept_images"]["count"]:
        raise ValueError(f"config key 'attacks.latent_inversion.num_images' ({latents}): more than the concept images "
                         f"there are to invert (concept_images.count {config['concept_images']['count']})")
    unlearn_diff, templates = config["attacks"]["unlearn_diff"]["num_prompts"], config["prompts"]["templates"]
    if "unlearn-diff" in config["attacks"]["run"] and unlearn_diff > len(templates):
        raise ValueError(f"config key 'attacks.unlearn_diff.num_prompts' ({unlearn_diff}): one prompt per template naming the "
                         f"concept, and prompts.templates has {len(templates)}")
    inversion = config["attacks"]["concept_inversion"]
    if inversion["sld_unroll"] > inversion["sld_window"]:
        raise ValueError(f"config key 'attacks.concept_inversion.sld_unroll' ({inversion['sld_unroll']}): more unrolled steps "
                         f"than the window of distinct timesteps they are drawn from (sld_window {inversion['sld_window']})")


_check_concepts()
_check_methods()
_check_imports()
_check_attacks()

CONCEPTS = config["concepts"]
METHODS = config["erasure"]["methods"]  # models: registered methods and stacks of them ("esd-x+irece")
TV = config["erasure"]["task_vector"]
ATTACKS_RUN = config["attacks"]["run"]  # each is one prompt set of the audit, on every model
PROMPT_SETS = ["name"] + ATTACKS_RUN + ["control"]
# The TV paper's control task: fixed free-text prompts every audited model draws, scored by CLIP (rules/control_task.smk).
CONTROL_PROMPTS = config["evaluation"]["control_task"]["prompts"]
BASE_CONTROL_TASK = "results/generations/control-task-base/control-prompts.safetensors"  # drawn once for every concept


def control_task_images(concept, model):
    """The control task's images of `model` audited for `concept`: the base's are the same for every concept."""
    return BASE_CONTROL_TASK if model == "base" else f"results/generations/{concept}/{model}/control-prompts.safetensors"


# Models that get the full audit (every prompt set): the base and each erasure method or stack.
# "tv" is the task-vector model at the alpha its erase job chose.
AUDITED_MODELS = ["base"] + METHODS
RES = config["resources"]
# Scheduling order among ready jobs: the stages others wait on first (the base model, concept images, then the fine-tune, the base's
# attacks and the erasures), generation after them, the quick summaries last. Without it Snakemake picked among ready
# jobs in no useful order and one concept's Selective Amnesia started last, so its erase job, generation and memories
# probe ran one after another with a core idle (bench/dag_cost.py timeline). Order only: no job's output changes.
PRIORITY = dict(base=50, concept_images=40, upstream=30, erase=20, generate=10, probe=5)
# The scoring jobs (evaluate, score_control_task): on the embedded default a small CNN and CLIP over 8 x 8 digits take
# seconds, less than a cluster submission, so they run in the Snakemake process; with a pretrained model they score
# thousands of 512-pixel images with ResNet-50, CLIP and Inception: compute jobs of their own (on the CPU, where the
# evaluators run), never on the submitting node.
SCORING_IS_LOCAL = config["base_model"]["source"] == "embedded"


_NAMES = "|".join(re.escape(m) for m in ERASURE_METHODS)


wildcard_constraints:
    concept="[a-z0-9_]+",
    model=f"base|(?:{_NAMES})(?:\\+(?:{_NAMES}))*",
    method="|".join(re.escape(m) for m, spec in ERASURE_METHODS.items() if not spec.is_guard),
    prompt_set="|".join(re.escape(p) for p in PROMPT_SETS),
    attack="|".join(re.escape(a) for a in ATTACKS),


def attack_names(artefact):
    """Regex of the attacks that run a job of their own and write this kind of artefact ("(?!)", matching
    nothing, where there are none: an empty constraint would be no constraint)."""
    names = [re.escape(a) for a, spec in ATTACKS.items() if spec.module and not spec.in_generation and spec.artefact == artefact]
    return "|".join(names) or "(?!)"


def package_code(script, registry_modules=None):
    """Param `code` of a rule: a fingerprint of the package modules its script can import (and of the registry
    modules `registry_modules(wildcards)` names, which the step loads by name), so a change to the code a job runs
    re-runs it and a comment or docstring edit does not (unerase.code_version; README: what re-runs what)."""
    path = os.path.join(workflow.basedir, "scripts", script)
    if registry_modules is None:
        return code_fingerprint(path)
    return lambda wildcards: code_fingerprint(path, *registry_modules(wildcards))


def guard_modules(model):
    """The registry modules of a model stack's guards (their sampler code)."""
    if model == "base":
        return []
    return [f"unerase.erasure.{g.module}" for g in parse_stack(model)[1]]


def log_path(rule_name, *parts):
    return f"results/logs/{rule_name}/{os.path.join(*parts)}.log"


def benchmark_path(rule_name, *parts):
    # Wall time, CPU seconds and peak memory of every job; bench/dag_cost.py sums them per rule.
    return f"results/benchmarks/{rule_name}/{os.path.join(*parts)}.tsv"


def checkpoint_path(rule_name, *parts):
    # Outside the declared outputs: a killed job keeps it, and the rerun resumes from it.
    return in_run_dir(f"results/checkpoints/{rule_name}/{os.path.join(*parts)}.pt")


def user_file(path):
    """A file the user names in the config, as an input: the same file for every replicate (Snakemake's module
    prefix moves relative inputs into the replicate's folder; `local` paths it leaves alone)."""
    return local(path)


def stored(path, kind):
    """`path`, or temp(path) where config storage.temp lists its kind ("finetuned", "images"): deleted once every job
    reading it is done; a later job that needs it again re-makes it."""
    return temp(path) if kind in config["storage"]["temp"] else path


def report_item(path, category, **kwargs):
    """`report(path, ...)` in the category's section; a replicate's items in sections of their own ("Tables, seed 1")."""
    return report(path, category=f"{category}, seed {config['seed']}" if RUN_DIR else category, **kwargs)


def in_run_dir(path):
    """`path` as a job reads it from its params, which Snakemake does not move into a replicate's folder."""
    return RUN_DIR + path


def attack_artefact_params(wildcards):
    return [in_run_dir(p) for p in attack_artefact_paths(wildcards)]


def replicate_dir(seed):
    """Where the run of `seed` lives: the main run's folder for `seed`, replicates/seed-N/ for the others."""
    return "" if seed == config["seed"] else f"replicates/seed-{seed}/"


def base_model_inputs(wildcards):
    return {"model": "results/embedded/model"} if config["base_model"]["source"] == "embedded" else {}


def weight_part(model):
    """The weight method of a model stack ("esd-x" of "esd-x+irece"); None for the base and guards alone."""
    if model == "base":
        return None
    weights, _ = parse_stack(model)
    return weights.name if weights else None


def unet_patch(wildcards):
    """The UNet patch file of model `wildcards.model` (none for the base model and for guards alone)."""
    weights = weight_part(wildcards.model)
    if weights is None:
        return {}
    return {"unet_patch": f"results/erased/{wildcards.concept}/{weights}/unet_patch.safetensors"}


THROUGH_SLD = config["attacks"]["concept_inversion"]["through_sld"]


def attacked_model(model, attack):
    """The model white-box attack `attack` on `model` is learned on. A guard leaves the weights alone, so
    the attack is learned on the stack's weights (the base for a guard alone) and then sampled under the
    guard (CCE's attack on Negative Prompt); with `through_sld`, a stack with an SLD guard is attacked
    through the guard itself (CCE's Algorithm 2) by the attacks that can (Concept Inversion), so it is
    learned on the whole stack."""
    if (model != "base" and THROUGH_SLD and "through_sld" in ATTACKS[attack].guard_settings
            and any(g.config == "sld" for g in parse_stack(model)[1])):
        return model
    return weight_part(model) or "base"


def through_guard(model, attack):
    """Whether `attack` learned on `model` goes through its guards (an SLD stack with `through_sld`)."""
    return model != (weight_part(model) or "base") and attacked_model(model, attack) == model


def attack_artefact_paths(wildcards):
    """The artefact of each attack of the audit, in ATTACKS_RUN's order, as used on model `wildcards.model`."""
    return [artefact_path(wildcards.concept, attacked_model(wildcards.model, a), a) for a in ATTACKS_RUN]


# Attacks learned inside a generation job (registry: in_generation): those of the audit and those a black-box
# attack of the audit transfers from the base model. Each is learned once per model it is learned on
# (attacked_model): in that model's generation job where the model is audited, in an attack job where only
# stacks on its weights are (methods: [esd-x+irece] without esd-x).
INLINE_ATTACKS = [a for a, spec in ATTACKS.items() if spec.in_generation and any(learned_by(r).name == a for r in ATTACKS_RUN)]


def _learners(attack):
    """The models inline attack `attack` is learned on: where the audit's white-box uses need it, and the base
    for its black-box transfers."""
    users = [r for r in ATTACKS_RUN if learned_by(r).name == attack]
    models = {attacked_model(m, r) for r in users if ATTACKS[r].learned_on == "model" for m in AUDITED_MODELS}
    return models | ({"base"} if any(ATTACKS[r].learned_on == "base" for r in users) else set())


INLINE_LEARNERS = {a: _learners(a) for a in INLINE_ATTACKS}


def inline_attacks_of(model):
    """The attacks `model`'s generation job learns before it generates, in INLINE_ATTACKS' order."""
    return [a for a in INLINE_ATTACKS if model in INLINE_LEARNERS[a]]


def generation_groups():
    """The audited models grouped by the attacks their generation job learns (a rule's outputs are fixed,
    so each group is one generate rule): [(rule name, inline attacks, models)], the base's group first and
    named "generate"; guard stacks, which sample their weights' artefacts, "generate_guarded"."""
    groups = {}
    for m in AUDITED_MODELS:
        groups.setdefault(tuple(inline_attacks_of(m)), []).append(m)
    out = []
    for inline, models in groups.items():
        name = "generate" if "base" in models else "_".join(["generate_guarded"] + [a.replace("-", "_") for a in inline])
        out.append((name, list(inline), models))
    return sorted(out, key=lambda g: g[0] != "generate")


# Inline attacks learned on models without a generation job (a stack's weights where only the stack is audited): attack jobs.
STANDALONE_INLINE = {a: sorted(INLINE_LEARNERS[a] - set(AUDITED_MODELS)) for a in INLINE_ATTACKS}
STANDALONE_INLINE = {a: models for a, models in STANDALONE_INLINE.items() if models}
STANDALONE_MODELS = sorted({m for models in STANDALONE_INLINE.values() for m in models})


def models_regex(models):
    return "|".join(re.escape(m) for m in models) or "(?!)"


def standalone_inline_names(artefact):
    """Regex of the inline attacks writing this kind of artefact that a model without a generation job needs."""
    return "|".join(re.escape(a) for a in STANDALONE_INLINE if ATTACKS[a].artefact == artefact) or "(?!)"


def attack_modules(wildcards):
    """The registry modules an attack job runs: the attack's, and its model's guards' where it learns through them."""
    return [f"unerase.attacks.{ATTACKS[wildcards.attack].module}"] + (
        guard_modules(wildcards.model) if through_guard(wildcards.model, wildcards.attack) else [])


def made_in_generation(model, attack):
    """Whether the artefact `attack` uses on `model` is written by `model`'s own generation job."""
    source = "base" if ATTACKS[attack].learned_on == "base" else attacked_model(model, attack)
    return learned_by(attack).in_generation and source == model


def attack_artefacts(wildcards):
    """The artefacts a generation job reads that other jobs write (attack jobs, or another model's generation job)."""
    return [p for a, p in zip(ATTACKS_RUN, attack_artefact_paths(wildcards)) if not made_in_generation(wildcards.model, a)]


def inline_attack_outputs(model, inline):
    """The artefacts and records of the attacks `inline` learned in `model`'s generation job."""
    if not inline:
        return {}
    return dict(inline_artefacts=[artefact_path("{concept}", model, a) for a in inline],
                inline_records=[f"results/attacks/{{concept}}/{model}/{a}/attack.json" for a in inline])


def inline_attack_inputs(inline):
    return lambda wildcards: {need: _ATTACK_NEEDS[need](wildcards.concept) for a in inline for need in ATTACKS[a].needs}


def inline_attack_params(inline):
    """Per inline attack, what its attack job's params would be (config block less the guard-only keys where it
    learns through no guard, sampler keys, guards, checkpoint): a change re-runs the generation jobs that learn it."""
    def per_attack(wildcards):
        out = {}
        for a in inline:
            wc = SimpleNamespace(concept=wildcards.concept, model=wildcards.model, attack=a)
            out[a] = dict(settings=attack_settings(wc), sampling=attack_sampling(wc),
                          guards=sampling_options(wc) if through_guard(wc.model, a) else {},
                          resume_from=checkpoint_path("attack", a, wc.concept, wc.model))
        return out
    return per_attack


def inline_attack_modules(inline):
    return [f"unerase.attacks.{ATTACKS[a].module}" for a in inline]


# Where each input an attack may declare (`needs` in the registry) comes from, per concept.
_ATTACK_NEEDS = {
    "concept_images": lambda c: f"results/concept_images/{c}/images.safetensors",
}


def attack_inputs(wildcards):
    needs = {need: _ATTACK_NEEDS[need](wildcards.concept) for need in ATTACKS[wildcards.attack].needs}
    return unet_patch(wildcards) | needs


def attack_settings(wildcards):
    """The attack's config block, less the keys it reads only through a guard where it learns through none."""
    spec = ATTACKS[wildcards.attack]
    block = {k: v for k, v in config["attacks"][spec.config].items() if k not in spec.sampled_with}
    if through_guard(wildcards.model, wildcards.attack):
        return block
    return {k: v for k, v in block.items() if k not in spec.guard_settings}


def guidance_by_set(wildcards):
    """{prompt set: guidance scale} where an attack's set is drawn on this model's weight method at a scale of its own
    (CCE: Concept Inversion on Forget-Me-Not at a higher guidance); other sets use config["sampling"]."""
    method = weight_part(wildcards.model)
    out = {}
    for a in ATTACKS_RUN:
        spec = ATTACKS[a]
        if method and "guidance_scale_by_method" in spec.sampled_with:
            scale = (config["attacks"][spec.config].get("guidance_scale_by_method") or {}).get(method)
            if scale is not None:
                out[a] = scale
    return out


def attack_sampling(wildcards):
    """The sampler settings an attack reads: those it declares, and the guidance scale where it learns through a guard."""
    keys = set(ATTACKS[wildcards.attack].sampling) | ({"guidance_scale"} if through_guard(wildcards.model, wildcards.attack) else set())
    return {k: config["sampling"][k] for k in sorted(keys)}


# The attack rules' params: the attack's own config block, so a change re-runs that attack's jobs only.
ATTACK_PARAMS = {
    "attack": "{attack}",
    "settings": attack_settings,
    "learned_on": "{model}",
    "concept_text": lambda wc: concept_text(wc),
    "label": lambda wc: concept_label(wc),
    "templates": config["prompts"]["templates"],
    "seed": config["seed"],
    "checkpoint": checkpoint_path("attack", "{attack}", "{concept}", "{model}"),
    # only where the attack learns through a guard (SLD), so sampling changes re-run nothing else
    "guards": lambda wc: sampling_options(wc) if through_guard(wc.model, wc.attack) else {},
    "sampling": attack_sampling,
}


def sampling_options(wildcards):
    """The sampler settings of a model stack's guards (none for the base and weight methods alone)."""
    if wildcards.model == "base":
        return {}
    options = {}
    for guard in parse_stack(wildcards.model)[1]:
        options.update(guard_sampling_options(guard.name, config["erasure"][guard.config], concept_text(wildcards)))
    return options


def erasure_implementation(name):
    from unerase.erasure import implementation

    return implementation(name)


def erasure_method(wildcards):
    return ERASURE_METHODS[wildcards.method]


# Where each input a method may declare (`needs` in the registry) comes from, per concept.
_ERASURE_NEEDS = {
    "concept_images": lambda c: f"results/concept_images/{c}/images.safetensors",
    "finetuned": lambda c: f"results/finetuned/{c}/unet.safetensors",
    "imported": lambda c: user_file(config["erasure"]["import"]["paths"][c]),  # changing the file re-runs the audit
    "diverse_inversion": lambda c: artefact_path(c, "base", "diverse-inversion"),  # tv-es: the Erasure Score's embeddings
}


def erasure_inputs(wildcards):
    """The files a method's needs name; need "evaluator" is a param (erasure_evaluator) plus the digit CNN's weights."""
    needs = erasure_method(wildcards).needs
    inputs = {need: _ERASURE_NEEDS[need](wildcards.concept) for need in needs if need != "evaluator"}
    return inputs | (evaluator_inputs(wildcards) if "evaluator" in needs else {})


def erasure_evaluator(wildcards):
    """Param of an erase job whose method scores images (need "evaluator"): the configured evaluator by argmax (the
    digit CNN's min_confidence left out, so a metric-only change re-runs no erasure); {} for the others."""
    return dict(name=EVALUATOR, settings=search_evaluator_settings()) if "evaluator" in erasure_method(wildcards).needs else {}


def config_value(dotted):
    if dotted == "evaluation.erasure_score":  # what tv-es reads of it (registry `uses`)
        return erasure_score_settings()
    if dotted == "evaluation.control_task":
        return control_task_settings()
    node = config
    for key in dotted.split("."):
        node = node[key]
    return node


def method_labels():
    return {m: stack_label(m) for m in METHODS}


def prompt_set_labels():
    """Column titles of the prompt sets: the name, each attack's label, the other classes."""
    return {"name": "name", **{a: ATTACKS[a].label for a in ATTACKS_RUN}, "control": "control"}


def concept_label(wildcards):
    return config["classes"][wildcards.concept]


def concept_text(wildcards):
    # The text that names a concept in prompts: its class name with underscores as spaces.
    return wildcards.concept.replace("_", " ")


def light():
    """resources: of a CPU job; a retry (the SLURM profile's `retries`) asks for twice the memory and time."""
    return dict(mem_mb=lambda wildcards, attempt: RES["mem_mb"] * attempt,
                runtime=lambda wildcards, attempt: RES["runtime"] * attempt)


def heavy():
    """resources: of a job that runs a diffusion model: as light(), plus resources.gpu GPUs (of resources.gpu_model)
    where that is above 0 — the SLURM executor plugin turns `gpu` and `gpu_model` into its GPU request."""
    gpus = dict(gpu=RES["gpu"]) if RES["gpu"] else {}
    if RES["gpu"] and RES.get("gpu_model"):
        gpus["gpu_model"] = RES["gpu_model"]
    return light() | gpus


def cells_of(concept):
    """(model, prompt set) cells scored for a concept: the full audit of the base and each method.
    (The task vector's alpha candidates are scored inside its erase job: erasure.json.)"""
    return [(m, s) for m in AUDITED_MODELS for s in PROMPT_SETS]


EVALUATOR = config["evaluation"]["evaluator"]  # unerase.evaluators.EVALUATORS
EVALUATOR_MODULE = f"unerase.evaluators.{EVALUATORS[EVALUATOR].module}"  # in the code fingerprint of every job that scores


def evaluator_inputs(wildcards):
    """The digit CNN's weights, where the workflow trains the evaluator; other evaluators find theirs from their config."""
    return {"classifier": "results/evaluator/classifier.safetensors"} if EVALUATOR == "digit-cnn" else {}


def evaluator_settings():
    """The evaluator's threshold and its own config block (a change re-runs the scoring and the tables only)."""
    block = config["evaluation"].get(EVALUATOR.replace("-", "_"), {})
    names = {"class_names": config["classes"]} if EVALUATOR == "clip" else {}
    return {"min_confidence": config["evaluation"]["min_confidence"], **block, **names}


def erasure_score_settings():
    """Block evaluation.erasure_score as the jobs that compute it read it: the CLIP block only where the score is
    CLIP similarity (so a change to it under score: probability re-runs nothing)."""
    block = config["evaluation"]["erasure_score"]
    return block if block["score"] == "clip-similarity" else {"score": block["score"]}


def control_task_clip():
    """The Erasure Score's CLIP as the control task reads it: without the class template (free-text prompts need none),
    so a template change re-scores nothing."""
    return {k: v for k, v in config["evaluation"]["erasure_score"]["clip"].items() if k != "template"}


def control_task_settings():
    """Block evaluation.control_task as tv-es's alpha search reads it: its prompts and, only when there are some, the
    CLIP that scores them (so a CLIP change without control prompts re-runs no alpha search)."""
    return {"prompts": CONTROL_PROMPTS, "clip": control_task_clip()} if CONTROL_PROMPTS else {"prompts": []}


def fid_settings():
    """Block evaluation.fid as the evaluate jobs read it: weights and reference only for Inception features."""
    block = config["evaluation"]["fid"]
    return block if block["features"] == "inception" else {"features": block["features"]}


def _check_scoring_files():
    """Files the scoring reads that the workflow does not make, checked when the plan is built (not after the GPU hours)."""
    fid, q16 = config["evaluation"]["fid"], config["evaluation"]["q16"]
    if fid["features"] == "inception" and not fid["reference"]:
        raise ValueError("config key 'evaluation.fid.reference' is not set: Inception FID needs real photographs (a folder of "
                         "images or pytorch-fid --save-stats statistics of one, e.g. COCO val2014), or set evaluation.fid.features: none")
    if fid["features"] == "inception" and not os.path.exists(fid["reference"]):
        raise ValueError(f"config key 'evaluation.fid.reference': {fid['reference']} does not exist")
    if fid["features"] == "evaluator" and EVALUATOR != "digit-cnn":
        raise ValueError(f"config key 'evaluation.fid.features': evaluator {EVALUATOR} has no reference set of real images; set "
                         "features: inception with evaluation.fid.reference, or none")
    if EVALUATOR == "q16" and not q16["prompts"]:
        raise ValueError("config key 'evaluation.q16.prompts' is not set: Q16 needs its learned prompts (prompts.p of "
                         "github.com/ml-research/Q16, data/ViT-L-14)")
    if EVALUATOR == "q16" and not os.path.isfile(q16["prompts"]):
        raise ValueError(f"config key 'evaluation.q16.prompts': {q16['prompts']} is not a file")


def scoring_files(wildcards):
    """The FID reference and Q16's prompts where configured: inputs of evaluate, so that a changed file re-scores."""
    fid = config["evaluation"]["fid"]
    files = [fid["reference"]] if fid["features"] == "inception" else []
    return [user_file(f) for f in files + ([config["evaluation"]["q16"]["prompts"]] if EVALUATOR == "q16" else [])]


_check_scoring_files()


def search_evaluator_settings():
    """The evaluator's settings for the jobs that search or probe with it (task-vector alpha, memories): its own block,
    without evaluation.min_confidence (the digit CNN's threshold; these read its top-1), so a threshold change re-runs
    no erasure and no memories probe."""
    return {k: v for k, v in evaluator_settings().items() if k != "min_confidence"}


def metric_files():
    return [f"results/metrics/{c}/{m}/{s}.json" for c in CONCEPTS for m, s in cells_of(c)]


PROBES_RUN = config["probes"]["run"]


def probe_patches(models):
    """Input function: the UNet patch of every weight method among `models`, by name (a probe job's inputs)."""
    def patches(wildcards):
        weights = sorted({weight_part(m) for m in models} - {None})
        return {f"patch_{w.replace('-', '_')}": f"results/erased/{wildcards.concept}/{w}/unet_patch.safetensors" for w in weights}
    return patches


def probe_patch_list(models):
    """Param function: per model of `models` (in order), its UNet patch path, "" for the base and guards alone."""
    def patch(concept, model):
        path = unet_patch(SimpleNamespace(concept=concept, model=model)).get("unet_patch")
        return in_run_dir(path) if path else ""

    return lambda wildcards: [patch(wildcards.concept, m) for m in models]


def probe_guards(models):
    """Param function: per model of `models` (in order), its guards' sampler options."""
    return lambda wildcards: [sampling_options(SimpleNamespace(concept=wildcards.concept, model=m)) for m in models]


SAFETY_GRID_MODELS = config["probes"]["safety_grid"]["models"]


def _check_safety_grid():
    if "safety-grid" not in PROBES_RUN:
        return
    for m in SAFETY_GRID_MODELS:
        if m not in AUDITED_MODELS:
            raise ValueError(f"config key 'probes.safety_grid.models': '{m}' is not an audited model (base or one of "
                             f"erasure.methods: {', '.join(METHODS)}); add it to erasure.methods or drop it here")
    dims = config["probes"]["safety_grid"]["dims"]
    if dims >= len(config["classes"]):
        raise ValueError(f"config key 'probes.safety_grid.dims' ({dims}): must be below the number of classes "
                         f"({len(config['classes'])}), whose names' principal axes span the grid")
    if "{}" not in config["probes"]["safety_grid"]["template"]:
        raise ValueError("config key 'probes.safety_grid.template': has no {} where the grid's token goes")


_check_safety_grid()


def audit_outputs():
    """What the audit itself produces: tables, figures, per-method records."""
    return [
        "results/tables/accuracy.csv",
        "results/tables/erasure_vs_inversion.md",
        "results/tables/attacks.md",
        "results/figures/crr_grid.png",
    ] + (["results/evaluator/classifier.json"] if EVALUATOR == "digit-cnn" else []) + [f"results/figures/overview_{c}.png" for c in CONCEPTS] + (
        [f"results/figures/diverse_inversion_{c}.png" for c in CONCEPTS] if "diverse-inversion" in ATTACKS_RUN else []) + [
        f"results/erased/{c}/{w}/erasure.json" for c in CONCEPTS for w in sorted({weight_part(m) for m in METHODS} - {None})] + (
        ["results/figures/tv_es_alpha.png"] if "tv-es" in {weight_part(m) for m in METHODS} else []) + (
        [f"results/figures/memories_nll_{c}.png" for c in CONCEPTS] + ["results/tables/memories.md"] if "memories" in PROBES_RUN else []) + (
        ["results/figures/safety_grid.png", "results/tables/safety_grid.md"] if "safety-grid" in PROBES_RUN else []) + (
        ["results/tables/control_task.md"] if CONTROL_PROMPTS else [])


def provenance_inputs(wildcards):
    """Every weight file of the run by its role ("erased/zero/esd-x"), except the base model's (from its manifest):
    the digit CNN where the workflow trains it as the evaluator, each erasure's UNet patch and fine-tune, each attack's
    learned embeddings or latents, imported UNets. Evaluators found at run time are listed from the metric files'
    fingerprints (unerase.provenance.scorers)."""
    weights = {"evaluator": "results/evaluator/classifier.safetensors"} if EVALUATOR == "digit-cnn" else {}
    for c in CONCEPTS:
        for w in sorted({weight_part(m) for m in METHODS} - {None}):
            weights[f"erased/{c}/{w}"] = f"results/erased/{c}/{w}/unet_patch.safetensors"
            if "finetuned" in ERASURE_METHODS[w].needs:
                weights[f"finetuned/{c}"] = _ERASURE_NEEDS["finetuned"](c)
            if "imported" in ERASURE_METHODS[w].needs:
                weights[f"imported/{c}"] = _ERASURE_NEEDS["imported"](c)
        for m in AUDITED_MODELS:
            for path in attack_artefact_paths(SimpleNamespace(concept=c, model=m)):
                if path.endswith(".safetensors"):
                    weights[f"attack/{os.path.dirname(path).removeprefix('results/attacks/')}"] = path
    return weights


# The Markdown tables the report shows as HTML pages (rules/report.smk), and their titles.
REPORT_TABLES = {
    "erasure_vs_inversion": "Erased and after Concept Inversion (Task-Vector paper, Table 2 layout)",
    "attacks": "Every attack on every model",
    "modalities": "Every attack by input modality and access (M-ErasureBench layout)",
    "quality": "Control images: accuracy and FID per model",
    **({"unlearn_diff": "UnlearnDiff: pre-attack and post-attack (UnlearnDiffAtk layout)"} if "unlearn-diff" in ATTACKS_RUN else {}),
    **({"memories": "Memories of forgotten concepts"} if "memories" in PROBES_RUN else {}),
    **({"safety_grid": "Unconditional safety grid"} if "safety-grid" in PROBES_RUN else {}),
    **({"control_task": "Control task: CLIP similarity of fixed unrelated prompts' images (Task-Vector paper)"} if CONTROL_PROMPTS else {}),
    "efficiency": "Time, memory and disk per stage, method and attack",
    **({"seeds": "Replicates over seeds: every cell's mean and 95 % interval"} if config["seeds"] else {}),
}


def final_outputs():
    """The audit, its efficiency table, the report's table pages and the run's provenance manifest."""
    return audit_outputs() + ["results/tables/efficiency.md"] + [f"results/report/{t}.html" for t in REPORT_TABLES] + [
        "results/provenance.json"] + (["results/tables/seeds.csv"] if config["seeds"] else [])


# --- generation ---
def _grid(model, prompt_set):
    path = f"results/generations/{{concept}}/{model}/{prompt_set}.png"
    return report_item(path, category="Generations", subcategory="{concept}", labels={"model": model, "prompts": prompt_set})


def generation_outputs(model, prompt_sets):
    return dict(
        images=[stored(f"results/generations/{{concept}}/{model}/{s}.safetensors", "images") for s in prompt_sets],
        grids=[_grid(model, s) for s in prompt_sets],
    )


GENERATION_PARAMS = dict(
    concept_text=concept_text,
    label=concept_label,
    classes=config["classes"],
    templates=config["prompts"]["templates"],
    num_images=config["evaluation"]["images_per_cell"],
    seed=config["seed"],
    **config["sampling"],
)
