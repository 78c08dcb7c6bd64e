"""Inference-time guards: the base model's weights, a changed sampler. A guard writes no UNet patch;
the generation step passes `sampling_options(...)` to the sampler.

- Negative Prompt (`np`): the concept's text replaces the empty prompt of classifier-free guidance,
  so every step is guided away from it (protocols.md; the CCE paper attacks it).
"""
from __future__ import annotations


def sampling_options(method: str, settings: dict, concept_text: str) -> dict:
    """Keyword arguments for unerase.sampling.generate that apply guard `method`."""
    if method == "np":
        return dict(negative_prompt=settings["prompt"].format(concept_text))
    raise ValueError(f"'{method}' is not an inference-time guard")
