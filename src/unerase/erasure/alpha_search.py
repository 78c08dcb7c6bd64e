"""The task vector's α: which candidates to try, in what order, and which one to keep.

The rule `largest` keeps the strongest negation that still spares the other classes (the TV paper
picks α by its Erasure Score over Diverse-Inversion embeddings, which favours large α; its released
scripts use α ≈ 1.75, protocols.md). `smallest` keeps the weakest negation that hides the name,
which issue #5 measured as the easiest to invert (seed 1: α = 1 for every digit, inversion 33–61 %).
"""
from __future__ import annotations

from collections.abc import Callable

from ..evaluation import ACCURACY_TOLERANCE

RULES = ("largest", "smallest")  # from the name and control images; "erasure-score": search_alpha_by_erasure_score


def meets(result: dict, max_target: float, min_control: float) -> bool:
    tol = ACCURACY_TOLERANCE
    return result["target"] <= max_target + tol and result["control"] >= min_control - tol


def choose_alpha(results: list[dict], max_target: float, min_control: float, rule: str = "largest") -> tuple[float, str]:
    """The largest (or smallest) α whose erased model meets both criteria; failing that, the α with
    the lowest concept accuracy among those keeping the control classes, else the lowest overall."""
    if rule not in RULES:
        raise ValueError(f"erasure.task_vector.alpha_rule: '{rule}' is not one of {RULES}")
    ok = [r for r in results if meets(r, max_target, min_control)]
    if ok:
        pick = max if rule == "largest" else min
        return pick(ok, key=lambda r: r["alpha"])["alpha"], f"{rule} alpha meeting both criteria"
    keep = [r for r in results if r["control"] >= min_control - ACCURACY_TOLERANCE] or results
    best = min(keep, key=lambda r: (r["target"], r["alpha"]))
    return best["alpha"], "no alpha met both criteria: lowest concept accuracy" + (" keeping control" if keep is not results else "")


def search_alpha(score: Callable[[float], dict], alphas: list[float], max_target: float, min_control: float,
                 rule: str = "largest") -> tuple[float, str, list[dict]]:
    """Score candidates in the rule's order (largest first, or smallest first) and stop at the first
    that meets both criteria: it is the one `choose_alpha` would pick from the whole grid, so the
    others need no images. `score(α)` returns {"target": ..., "control": ...}."""
    if rule not in RULES:
        raise ValueError(f"erasure.task_vector.alpha_rule: '{rule}' is not one of {RULES}")
    results = []
    for alpha in sorted((float(a) for a in alphas), reverse=rule == "largest"):
        results.append(dict(alpha=alpha, **score(alpha)))
        if meets(results[-1], max_target, min_control):
            break
    alpha, why = choose_alpha(results, max_target, min_control, rule)
    return alpha, why, sorted(results, key=lambda r: r["alpha"])


def keeps_control(result: dict, min_control: float, min_control_similarity: float | None = None) -> bool:
    """The other classes at `min_control` and, where a bound is given, the control task's mean CLIP similarity (the
    TV paper's six prompts, measured per α when evaluation.control_task.prompts is set) at `min_control_similarity`."""
    tol = ACCURACY_TOLERANCE
    if result["control"] < min_control - tol:
        return False
    return min_control_similarity is None or result["control_similarity"] >= min_control_similarity - tol


def search_alpha_by_erasure_score(score: Callable[[float], dict], alphas: list[float], max_erasure_score: float,
                                  min_control: float, min_control_similarity: float | None = None) -> tuple[float, str, list[dict]]:
    """The TV paper's choice (§4.2, Fig. 12): the smallest α whose Erasure Score is at most
    `max_erasure_score` while the control is kept (`keeps_control`); failing that, the lowest Erasure Score keeping the
    control, else the lowest overall. Every α is scored (the α / Erasure Score / control trade-off is the figure the
    paper reads, its Fig. 4). `score(α)` returns {"target", "control", "erasure_score"} and, with a control-similarity
    bound, "control_similarity"."""
    tol = ACCURACY_TOLERANCE
    results = [dict(alpha=a, **score(a)) for a in sorted(float(a) for a in alphas)]
    keep = [r for r in results if keeps_control(r, min_control, min_control_similarity)]
    ok = [r for r in keep if r["erasure_score"] <= max_erasure_score + tol]
    if ok:
        return ok[0]["alpha"], f"smallest alpha with Erasure Score <= {max_erasure_score} keeping control", results
    pool = keep or results
    best = min(pool, key=lambda r: (r["erasure_score"], r["alpha"]))
    return best["alpha"], "no alpha met both: lowest Erasure Score" + (" keeping control" if keep else ""), results
