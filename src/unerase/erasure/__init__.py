"""The erasure methods' registry. The workflow (rules/common.smk) reads it to build the DAG without
importing torch; the generic erase step (unerase.steps.erase) reads it to find a method's code.

Adding a method is one module here with an `erase(job) -> ErasureResult` function (see job.py) or,
for an inference-time guard, its sampler code and its options in guard_options.sampling_options; one
`Method` entry below, one config block under `erasure:` and its schema entry, and its tests: the
generic `erase` rule, its script and the wildcard vocabulary follow from this table.

A model of the audit is a *stack*: at most one weight method, then any guards, joined by "+"
(`esd-x+irece`, `tv+sld-medium`; a guard alone stacks on the base model). `parse_stack` reads one.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str                      # the model's name in paths and tables ("esd-x", "tv", "uce")
    label: str                     # its column label in the paper-style table
    module: str                    # the submodule of unerase.erasure holding `erase(job)`
    config: str                    # its block under config["erasure"]
    needs: tuple[str, ...] = ()    # extra inputs of its job: "concept_images", "finetuned", "evaluator", "imported", "diverse_inversion"
    uses: tuple[str, ...] = ()     # other config keys its job reads, dotted ("sampling", "evaluation.images_per_cell"):
                                   # a change to one of them re-runs its jobs, a change elsewhere does not
    source: str = ""               # the paper / reference code it follows
    kind: str = "weights"          # weights: writes a UNet patch (generic erase rule) | guard: acts in the sampler only

    @property
    def is_guard(self) -> bool:
        return self.kind == "guard"


_ESD = "Gandikota et al. 2023; rohitgandikota/erasing"
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("esd-x", "ESD-x", "esd", "esd", needs=("concept_images",), source=_ESD),
    Method("esd-u", "ESD-u", "esd", "esd", needs=("concept_images",), source=_ESD),
    Method("esd-x-strict", "ESD-x-strict", "esd", "esd", needs=("concept_images",), source=_ESD),
    Method("esd-all", "ESD-all", "esd", "esd", needs=("concept_images",), source=_ESD),
    Method("tv", "TV", "task_vector", "task_vector", needs=("finetuned", "evaluator"), uses=("sampling", "evaluation.images_per_cell"),
           source="Pham et al. 2024 (Robust Concept Erasure Using Task Vectors)"),
    Method("tv-es", "TV-ES", "task_vector", "tv_es", needs=("finetuned", "evaluator", "diverse_inversion"),
           uses=("sampling", "evaluation.images_per_cell", "erasure.task_vector.alphas", "erasure.task_vector.min_control_accuracy",
                 "erasure.task_vector.min_control_of_base", "evaluation.erasure_score", "evaluation.control_task"),
           source="Pham et al. 2024, alpha by the Erasure Score over Diverse Inversion (section 4.2)"),
    Method("tv-pruned", "TV-pruned", "tv_pruned", "tv_pruned", needs=("finetuned", "evaluator"),
           uses=("sampling", "evaluation.images_per_cell", "erasure.task_vector"), source="Pham et al. 2024, pruned task vectors"),
    Method("uce", "UCE", "uce", "uce", source="Gandikota et al. 2024; rohitgandikota/unified-concept-editing"),
    Method("import", "Imported", "imported", "import", needs=("imported",), source="a UNet erased elsewhere (erasure.import.paths)"),
    Method("ac", "AC", "ablating", "ablating", uses=("sampling",), source="Kumari et al. 2023 (Ablating Concepts); nupurkmr9/concept-ablation"),
    Method("ft-cond", "FT-cond", "conditional_finetune", "conditional_finetune", uses=("sampling",),
           source="Pham et al. 2024, Table 1 'fine-tune' (the concept's prompts trained on other classes' images)"),
    Method("sa", "SA", "selective_amnesia", "selective_amnesia", uses=("sampling",), source="Heng & Soh 2023 (Selective Amnesia)"),
    Method("fmn", "FMN", "forget_me_not", "forget_me_not", needs=("concept_images",),
           source="Zhang et al. 2024 (Forget-Me-Not), attention re-steering"),
    Method("receler", "Receler", "receler", "receler", needs=("concept_images",),
           source="Huang et al. 2024 (Receler); jasper0314-huang/Receler"),
    Method("irece", "IRECE", "irece", "irece", kind="guard", source="M-ErasureBench (IRECE), inference-time latent masking"),
    Method("np", "NP", "guards", "negative_prompt", kind="guard", source="negative prompt; CCE (Pham et al. 2023) attacks it"),
    *(Method(f"sld-{p}", f"SLD-{p.capitalize()}", "guards", "sld", kind="guard", source="Schramowski et al. 2023, preset " + p)
      for p in ("weak", "medium", "strong", "max")),
)}


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown erasure method '{name}'; known: {', '.join(METHODS)}") from None


def parse_stack(model: str) -> tuple[Method | None, list[Method]]:
    """(its weight method or None, its guards) of a model name such as "esd-x+irece"."""
    parts = model.split("+")
    methods = [get(p) for p in parts]
    if len(set(parts)) != len(parts):
        raise ValueError(f"'{model}' names a method twice")
    guards = [m for m in methods if m.is_guard]
    if len({g.config for g in guards}) != len(guards):
        raise ValueError(f"'{model}' stacks two guards of one kind (e.g. two SLD presets); keep one")
    weights = [m for m in methods if not m.is_guard]
    if len(weights) > 1 or (weights and methods[0] is not weights[0]):
        raise ValueError(f"'{model}': a model is at most one weight method followed by guards, e.g. esd-x+irece")
    return (weights[0] if weights else None), [m for m in methods if m.is_guard]


def stack_label(model: str) -> str:
    return "+".join(get(p).label for p in model.split("+"))


def implementation(name: str):
    """The module whose `erase(job)` runs method `name` (imported only by the job that needs it)."""
    return importlib.import_module(f"{__name__}.{get(name).module}")
