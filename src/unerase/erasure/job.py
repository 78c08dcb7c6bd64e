"""What every erasure method receives and returns: one shape for the generic erase step."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..components import Components
from ..diffusion import LatentBank
from ..prompts import class_text


@dataclass
class ErasureJob:
    model: Components            # the base model in float32; the method edits model.unet in place
    method: str                  # the registry name ("esd-x", "tv", ...)
    settings: dict               # the method's config block
    concept_text: str            # the concept as written in prompts
    label: int                   # the concept's class label
    classes: dict[str, int]      # every class (the others are what a method may preserve)
    templates: list[str]         # prompt templates, "{}" standing for the concept
    seed: int
    manifest: str                # the base model's manifest (for a second load, e.g. in another precision)
    inputs: dict[str, str] = field(default_factory=dict)   # the extra inputs the method declared (paths)
    shared: dict = field(default_factory=dict)             # the other config keys it declared (dotted) -> value
    checkpoint: str | None = None                          # resumable state, outside the job's outputs
    evaluator: dict = field(default_factory=dict)          # need "evaluator": {name, settings} of unerase.evaluators (its
                                                           # weights: inputs["classifier"] for the digit CNN, else its settings)

    def scorer(self):
        """The configured evaluator (need "evaluator"), loaded: the task vector's alpha search scores with it."""
        from .. import evaluators

        if not self.evaluator:
            raise ValueError(f"erase {self.method}: the rule passed no evaluator, which the method declares (need 'evaluator')")
        return evaluators.load(self.evaluator["name"], self.evaluator["settings"], self.inputs.get("classifier"))

    def concept_bank(self) -> LatentBank:
        """VAE posteriors of the concept images (input "concept_images")."""
        return LatentBank.from_image_set(self.model, self.inputs["concept_images"])

    def fingerprint(self) -> dict:
        """What a resumable checkpoint of this job must have been written with: the method's settings,
        the concept, its prompts and classes, and the other config keys it reads (e.g. the sampling
        that drew its replay images). A checkpoint of anything else is ignored, not resumed."""
        return dict(self.settings, method=self.method, text=self.concept_text, templates=self.templates, classes=self.classes,
                    shared=self.shared)

    def other_classes(self) -> list[str]:
        return [class_text(name) for name, lab in sorted(self.classes.items(), key=lambda kv: kv[1]) if lab != self.label]


@dataclass
class ErasureResult:
    changed: list[str]           # the UNet parameters the method changed: the patch holds exactly these
    info: dict = field(default_factory=dict)  # what the method decided (written to erasure.json)
