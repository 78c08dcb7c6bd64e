"""The erasure methods' registry. The workflow (rules/common.smk) reads it to build the DAG without
importing torch; the generic erase step (unerase.steps.erase) reads it to find a method's code.

Adding a method is one module here with an `erase(job) -> ErasureResult` function (see job.py) or,
for an inference-time guard, a `sampling_options(settings, concept_text)` entry in guards.py; one
`Method` entry below, one config block under `erasure:` and its schema entry, and its tests: the
generic `erase` rule, its script and the wildcard vocabulary follow from this table.
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
    needs: tuple[str, ...] = ()    # extra inputs of its job: "concept_images", "finetuned", "classifier", "imported"
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
    Method("tv", "TV", "task_vector", "task_vector", needs=("finetuned", "classifier"), uses=("sampling", "evaluation.images_per_cell"),
           source="Pham et al. 2024 (Robust Concept Erasure Using Task Vectors)"),
    Method("tv-pruned", "TV-pruned", "tv_pruned", "tv_pruned", needs=("finetuned", "classifier"),
           uses=("sampling", "evaluation.images_per_cell", "erasure.task_vector"), source="Pham et al. 2024, pruned task vectors"),
    Method("uce", "UCE", "uce", "uce", source="Gandikota et al. 2024; rohitgandikota/unified-concept-editing"),
    Method("import", "Imported", "imported", "import", needs=("imported",), source="a UNet erased elsewhere (erasure.import.paths)"),
    Method("np", "NP", "guards", "negative_prompt", kind="guard", source="negative prompt; CCE (Pham et al. 2023) attacks it"),
    *(Method(f"sld-{p}", f"SLD-{p.capitalize()}", "guards", "sld", kind="guard", source="Schramowski et al. 2023, preset " + p)
      for p in ("weak", "medium", "strong", "max")),
)}


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown erasure method '{name}'; known: {', '.join(METHODS)}") from None


def implementation(name: str):
    """The module whose `erase(job)` runs method `name` (imported only by the job that needs it)."""
    return importlib.import_module(f"{__name__}.{get(name).module}")
