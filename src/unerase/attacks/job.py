"""What every attack receives: one shape for the generic attack step."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..components import Components


@dataclass
class AttackJob:
    model: Components            # the model it is learned on (the audited weights, or the base), float32, frozen
    attack: str                  # the registry name ("inversion", "ring-a-bell")
    settings: dict               # the attack's config block
    concept_text: str            # the concept as written in prompts
    label: int                   # the concept's class label
    templates: list[str]         # prompt templates, "{}" standing for the concept
    seed: int
    artefact: str                # the output the attack writes (embeddings or prompts)
    inputs: dict[str, str] = field(default_factory=dict)   # the extra inputs it declared (paths)
    checkpoint: str | None = None                          # resumable state, outside the job's outputs
    guards: dict = field(default_factory=dict)             # the sampler options of the stack's guards an attack goes through
    sampling: dict = field(default_factory=dict)           # config["sampling"] when the attack unrolls the sampler (SLD)

    @property
    def token(self) -> str:
        """The placeholder token of a learned embedding, e.g. <zero-inversion>."""
        return f"<{self.concept_text.replace(' ', '_')}-{self.attack}>"
