"""The attacks' registry. The workflow (rules/common.smk) reads it to build the DAG without importing
torch; the generic attack step (unerase.steps.attack) reads it to find an attack's code.

An attack learns an input that may bring an erased concept back: embeddings for new tokens, hard
prompts, or the seeds (initial latents) that regenerate concept images. Each yields one *prompt set*
of the audit (its name), generated on every audited model:

- white-box: learned on the audited model's own weights (one job per model). A guard leaves the
  weights alone, so a stack's white-box artefact is its weight method's (the base's for a guard
  alone), sampled under the guard — except where an attack learns through the guard itself
  (Concept Inversion with `through_sld` on an SLD stack: one job for the whole stack);
- black-box: learned without the audited model (once per concept, on the base model or its text
  encoder) and transferred to every model.

A white-box attack flagged `in_generation` (Concept Inversion, DDIM latent inversion) has no job of
its own where the model it is learned on is audited: that model's generation job learns it on the
model it has loaded, writes the artefact and record where an attack job would have, then generates.
Concept Inversion is ~30 s of work, DDIM latent inversion ~1 s, against a job's ~6-9 s of start-up
and model load on a 2-core CPU (issue #5); a guard stack's generation job samples its weights' artefact.

Adding an attack is one module here with `run(job: AttackJob) -> dict` writing `job.artefact`, one
`Attack` entry below, one config block under `attacks:` with its schema entry, and its tests.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

ARTEFACT_FILES = {"embeds": "learned_embeds.safetensors", "prompts": "prompts.json", "latents": "inverted_latents.safetensors"}


@dataclass(frozen=True)
class Attack:
    name: str                    # its prompt set in paths and tables ("inversion", "transfer", "ring-a-bell")
    label: str                   # its column label
    access: str                  # "white-box" | "black-box"
    artefact: str                # "embeds" (diffusers textual-inversion file) | "prompts" (JSON list of texts) |
                                 # "latents" (initial latents and the prompt to sample them with)
    module: str | None = None    # the submodule of unerase.attacks holding `run(job)`; None: reuses `reuses`
    config: str | None = None    # its block under config["attacks"]
    learned_on: str = "model"    # "model": the audited model's weights | "base": the base model, once per concept
    reuses: str | None = None    # an attack whose base-model artefact this one transfers
    needs: tuple[str, ...] = ()  # extra inputs of its job: "concept_images"
    guard_settings: tuple[str, ...] = ()  # keys of its config block read only when it learns through a guard:
                                          # left out of other jobs' params, so changing them re-runs only those
    sampling: tuple[str, ...] = ()        # keys of config["sampling"] it reads (latent inversion: the sampler's steps)
    sampled_with: tuple[str, ...] = ()    # keys of its config block read only where its prompt set is generated, not where it is
                                          # learned (Concept Inversion's guidance scale per erasure method: CCE on Forget-Me-Not)
    modality: str = "embedding"           # M-ErasureBench's input modality: "text" | "embedding" | "latent"
    in_generation: bool = False           # white-box, learned inside the generation job of the model it is learned on (the
                                          # workflow's attacked_model: a stack's weights, or the stack through an SLD guard),
                                          # which has that model loaded; an attack job only where that model is not audited
    source: str = ""


ATTACKS: dict[str, Attack] = {a.name: a for a in (
    Attack("inversion", "Concept Inversion", "white-box", "embeds", module="concept_inversion", config="concept_inversion",
           needs=("concept_images",), guard_settings=("through_sld", "sld_unroll", "sld_window"), sampled_with=("guidance_scale_by_method",),
           in_generation=True, source="Pham et al. 2024 (Circumventing Concept Erasure); NYU-DICE-Lab/circumventing-concept-erasure"),
    Attack("transfer", "Concept Inversion (transfer)", "black-box", "embeds", learned_on="base", reuses="inversion",
           source="M-ErasureBench: embeddings learned on the base model, used on the erased one"),
    Attack("diverse-inversion", "Diverse Inversion", "black-box", "embeds", module="diverse_inversion", config="diverse_inversion",
           learned_on="base", needs=("concept_images",), source="Pham et al. 2024 (Robust Concept Erasure Using Task Vectors), §4.1"),
    Attack("ring-a-bell", "Ring-A-Bell", "black-box", "prompts", module="ring_a_bell", config="ring_a_bell", learned_on="base",
           modality="text", source="Tsai et al. 2024 (Ring-A-Bell); chiayi-hsu/Ring-A-Bell"),
    Attack("unlearn-diff", "UnlearnDiff", "white-box", "prompts", module="unlearn_diff", config="unlearn_diff", needs=("concept_images",),
           modality="text", in_generation=True, source="Zhang et al. 2024 (UnlearnDiffAtk); OPTML-Group/Diffusion-MU-Attack, text_grad"),
    Attack("latent-inversion", "DDIM latent inversion", "white-box", "latents", module="latent_inversion", config="latent_inversion",
           needs=("concept_images",), sampling=("num_steps",), modality="latent", in_generation=True,
           source="M-ErasureBench: concept images DDIM-inverted on the erased model"),
    Attack("latent-transfer", "DDIM latent inversion (transfer)", "black-box", "latents", learned_on="base", reuses="latent-inversion",
           modality="latent", source="M-ErasureBench: concept images DDIM-inverted on the base model, sampled on the erased one"),
)}


def artefact_kind(path: str) -> str:
    """The kind of an attack artefact from its file name ("embeds", "prompts", "latents")."""
    for kind, name in ARTEFACT_FILES.items():
        if path.endswith(name):
            return kind
    raise ValueError(f"{path}: not an attack artefact (expected one of {', '.join(ARTEFACT_FILES.values())})")


def get(name: str) -> Attack:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack '{name}'; known: {', '.join(ATTACKS)}") from None


def implementation(name: str):
    spec = get(name)
    if spec.module is None:
        raise ValueError(f"attack '{name}' learns nothing of its own: it reuses '{spec.reuses}' learned on the base model")
    return importlib.import_module(f"{__name__}.{spec.module}")


def learned_by(name: str) -> Attack:
    """The attack whose job produces `name`'s artefact (itself, or the one it transfers)."""
    spec = get(name)
    return get(spec.reuses) if spec.reuses else spec


def artefact_path(concept: str, model: str, name: str) -> str:
    """Where the artefact that attack `name` uses on audited model `model` lives. `model` is the model
    whose weights it is learned on (the weight part of a stack; "base" for guards alone)."""
    spec = get(name)
    source = "base" if spec.learned_on == "base" else model
    owner = learned_by(name)
    return f"results/attacks/{concept}/{source}/{owner.name}/{ARTEFACT_FILES[owner.artefact]}"
