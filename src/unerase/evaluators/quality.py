"""Image quality where erasure should leave the model alone (the control cells): FID against real images, in the
features `evaluation.fid.features` names — `evaluator`: the evaluator's own (the digit CNN's penultimate layer
against scikit-learn's digits of the same classes: the default run's quality metric), `inception`: pytorch-fid's
Inception-v3 against `evaluation.fid.reference` (photographs, SD 1.4), `none`: no FID."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..fid import fid, frechet_distance, statistics

FEATURES = ("evaluator", "inception", "none")


def load_control_fid(settings: dict, scorer) -> Callable[[torch.Tensor, torch.Tensor], dict] | None:
    """`fid(images, labels) -> {fid, fid_reference, fid_features}` for the block `evaluation.fid`, or None for `none`."""
    features = settings.get("features", "evaluator")
    if features not in FEATURES:
        raise ValueError(f"config key 'evaluation.fid.features': '{features}' is not one of {', '.join(FEATURES)}")
    if features == "none":
        return None
    if features == "evaluator":
        if not hasattr(scorer, "reference_features"):
            raise ValueError(f"evaluation.fid.features: evaluator '{scorer.fingerprint['name']}' has no reference set of real images; "
                             "set features: inception with evaluation.fid.reference, or none")

        def by_evaluator(images, labels):
            reference, described = scorer.reference_features(sorted(set(labels.tolist())))
            return dict(fid=fid(scorer.features(images), reference), fid_reference=described,
                        fid_features=f"{scorer.fingerprint['name']} features")
        return by_evaluator

    from . import inception_fid

    if not settings.get("reference"):
        raise ValueError("evaluation.fid.reference is not set: FID with features inception needs real photographs (a folder of "
                         "images or pytorch-fid's .npz statistics of one, e.g. COCO), or set evaluation.fid.features: none")
    inception = inception_fid.load(settings)
    mu, sigma, described = inception.reference_statistics(settings["reference"])

    def by_inception(images, labels):
        return dict(fid=frechet_distance(*statistics(inception.features(images)), mu, sigma), fid_reference=described,
                    fid_features=f"{inception.fingerprint['name']} (sha256 {inception.fingerprint['sha256'][:12]})",
                    fid_evaluator=inception.fingerprint)  # its weights file and full sha256, for the run's provenance
    return by_inception
