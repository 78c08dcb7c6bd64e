"""What each inference-time guard hands the sampler: `sampling_options(...)`, keyword arguments for
unerase.sampling.generate. Pure data, no torch: the workflow calls it while it builds the DAG (a guard's
options are its jobs' params), and importing the guards' sampler code there cost seconds per dry run."""
from __future__ import annotations

# (guidance scale s_S, warm-up steps δ, threshold λ, momentum scale s_m, momentum β): the presets of
# ESD's evalscripts/sld-generate-images.py, the CCE and UnlearnDiffAtk code (protocols.md). diffusers'
# own SafetyConfig.WEAK uses guidance 20, not 200. Warm-up counts steps of a 50-step sampler.
SLD_PRESETS = {
    "weak": (200.0, 15, 0.0, 0.0, 0.0),
    "medium": (1000.0, 10, 0.01, 0.3, 0.4),
    "strong": (2000.0, 7, 0.025, 0.5, 0.7),
    "max": (5000.0, 0, 1.0, 0.5, 0.7),
}


def sampling_options(method: str, settings: dict, concept_text: str) -> dict:
    """Keyword arguments for unerase.sampling.generate that apply guard `method` with its config block `settings`."""
    if method == "np":
        return dict(negative_prompt=settings["prompt"].format(concept_text))
    if method.startswith("sld-") and method[4:] in SLD_PRESETS:
        return dict(safety=dict(preset=method[4:], concept=settings["concept"].format(concept_text)))
    if method == "irece":
        return dict(irece=dict(concept=settings["concept"].format(concept_text), tokens=concept_text,
                               threshold=settings["threshold"], at=settings["at"]))
    raise ValueError(f"'{method}' is not an inference-time guard")
