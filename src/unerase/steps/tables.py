"""Table step: gather every metric file into the long CSV and the paper-style Markdown table."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import atomic_path, read_json
from ..evaluation import ERASURE_SCORE_FIELDS, erasure_score
from ..progress import setup_logging
from ..tables import (attacks_table, control_task_long, control_task_table, layout_cells, long_table, memories_long, memories_table,
                      modality_headers, modality_order, paper_table, pre_post_table, quality_table, safety_grid_long, safety_grid_table,
                      scorer_text, target_other_table, to_markdown, wilson_interval)


def _images_text(df: pd.DataFrame) -> str:
    """"n = 80 images per cell" (or the range where prompt sets differ: latent inversion regenerates fewer)."""
    n = df["images"].dropna().astype(int)
    return f"n = {n.min()} images per cell" if n.min() == n.max() else f"n = {n.min()}-{n.max()} images per cell"


ES_MEANING = {"probability": "concept probability (%)", "clip-similarity": "CLIP cosine similarity to the concept's name (× 100)"}


def erasure_scores(metrics: list[dict], score: str = "probability", diverse_set: str = "diverse-inversion") -> pd.DataFrame:
    """Per (concept, model): the Erasure Score over its name cell and its Diverse-Inversion cell, by the concept score
    `score` (evaluation.erasure_score.score: the evaluator's probability, or the TV paper's CLIP similarity)."""
    mean_key, token_key = ERASURE_SCORE_FIELDS[score]
    cells = {(m["concept"], m["model"], m["prompt_set"]): m for m in metrics}
    rows = []
    for (concept, model, prompt_set), name in cells.items():
        diverse = cells.get((concept, model, diverse_set))
        if prompt_set != "name" or diverse is None:
            continue
        if mean_key not in name:
            raise ValueError(f"{concept}/{model}/name: its metrics have no {mean_key}; the Erasure Score by {score} needs the evaluate "
                             "jobs run with evaluation.erasure_score.score set so")
        by_token = diverse.get(token_key, {})
        best = max(by_token, key=by_token.get) if by_token else None
        scorer = name.get("similarity_evaluator" if score == "clip-similarity" else "evaluator", {})
        rows.append(dict(concept=concept, model=model, erasure_score=erasure_score(name[mean_key], by_token),
                         name_score=name[mean_key], best_embedding=best,
                         best_embedding_score=by_token.get(best, float("nan")), embeddings=len(by_token), score=score,
                         scorer=scorer.get("name", ""), scorer_sha256=scorer.get("sha256", "")))
    return pd.DataFrame(rows, columns=["concept", "model", "erasure_score", "name_score", "best_embedding", "best_embedding_score",
                                       "embeddings", "score", "scorer", "scorer_sha256"])


def _write_csv(df: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def run(*, metrics, long_csv, paper_md, paper_csv, attacks_md, attacks_csv, modalities_md, modalities_csv, erasure_score_csv, quality_md,
        quality_csv, methods, method_labels, prompt_sets, attacks, erasure_score_by="probability", unlearn_diff_md=None, unlearn_diff_csv=None,
        threads=1, log=None):
    """`attacks`: prompt set -> {label, access, modality} of each attack in the audit. `unlearn_diff_md`/`_csv`: where
    UnlearnDiff's pre-/post-attack table goes (UnlearnDiffAtk's layout), when it is in the audit. `erasure_score_by`:
    evaluation.erasure_score.score. Each Markdown table in a paper's layout has a CSV beside it with the same cells as
    numbers, each with its n and 95 % Wilson interval (unerase.tables.layout_cells)."""
    setup_logging(log)
    records, cells = [], []
    for path in metrics:
        m = read_json(path)
        cells.append(m)
        attack = attacks.get(m["prompt_set"], {})
        records.append(dict(concept=m["concept"], model=m["model"], prompt_set=m["prompt_set"], attack=attack.get("label", ""),
                            access=attack.get("access", ""), accuracy=m["accuracy"],
                            images=m["images"], evaluator=m["evaluator"]["name"], evaluator_sha256=m["evaluator"]["sha256"],
                            min_confidence=m["evaluator"]["threshold"], evaluator_weights=m["evaluator"]["weights_tag"],
                            evaluator_classes=m["evaluator"]["classes"], fid=m.get("fid", float("nan")),
                            fid_reference=m.get("fid_reference", ""), fid_features=m.get("fid_features", ""),
                            clip_similarity=m.get("mean_clip_similarity", float("nan")), guidance_scale=m.get("guidance_scale", float("nan")),
                            metrics_file=path))
    df = long_table(records)
    _write_csv(df, long_csv)
    wide = paper_table(df, methods, method_labels)
    ev = df.iloc[0].copy()
    ev["evaluator_sha256"] = ev["evaluator_sha256"][:12]  # the Markdown headers' short form; the CSVs carry the whole hash
    header = (f"Accuracy (%) of the evaluator ({ev['evaluator']}, {ev['evaluator_weights']}, sha256 {ev['evaluator_sha256']}, min confidence "
              f"{ev['min_confidence']}) on images generated from the concept's name / from the Concept-Inversion tokens; "
              f"'control' = the other classes' names; {_images_text(df)}. Each cell's n and 95 % Wilson interval (one seed) are in "
              f"{Path(paper_csv).name}; across seeds, `make seeds`.\n\n")
    with atomic_path(paper_md) as tmp:
        tmp.write_text(header + to_markdown(wide))
    _write_csv(layout_cells(df, methods, ["name", "inversion", "control"], labels=method_labels), paper_csv)
    headers = {s: f"{a['label']} ({a['access']})" for s, a in attacks.items()} | {"name": "name", "control": "control"}
    rows, columns = modality_order(methods, attacks)
    with atomic_path(modalities_md) as tmp:
        tmp.write_text(f"Concept Reproduction Rate (%) by input modality and access (M-ErasureBench's layout): the share of "
                       f"images the evaluator ({ev['evaluator']}, sha256 {ev['evaluator_sha256']}) classifies as the concept, "
                       f"concept by concept ({' / '.join(df['concept'].unique())}) = their mean. A stack's row follows its weight "
                       "method's, so a guard's effect (IRECE) reads row to row. Latent inversion regenerates DDIM-inverted concept "
                       "images from their seeds, inverted on the audited weights (white-box) or the base model (black-box); "
                       f"{_images_text(df)}, each cell's n and 95 % Wilson interval in {Path(modalities_csv).name}.\n\n"
                       + to_markdown(attacks_table(df, rows, columns, modality_headers(attacks), method_labels)))
    _write_csv(layout_cells(df, rows, columns, modality_headers(attacks), method_labels), modalities_csv)
    control_fid = df.loc[df["prompt_set"] == "control", ["fid", "fid_reference", "fid_features"]].dropna(subset=["fid"])
    if len(control_fid):  # which features and which real images the FID used (evaluation.fid)
        fid_text = (f"their FID in {control_fid['fid_features'].iloc[0] or ev['evaluator'] + ' features'} against "
                    f"{control_fid['fid_reference'].iloc[0]}")
    else:
        fid_text = "no FID (evaluation.fid.features: none)"
    with atomic_path(quality_md) as tmp:
        tmp.write_text(
            "Image quality where erasure should leave the model alone: each model's images of the other classes' names "
            f"(control), their accuracy (%) and {fid_text}, "
            f"concept by concept ({' / '.join(df['concept'].unique())}) = their mean. Lower FID = closer to the real images; with "
            f"{int(ev['images'])} generated images per cell FID is biased upwards, so compare models within a run.\n\n"
            + to_markdown(quality_table(df, methods, method_labels)))
    quality = layout_cells(df, methods, ["control"], labels=method_labels)
    fid = df.loc[df["prompt_set"] == "control", ["model", "concept", "fid"]].rename(columns={"fid": "control FID"})
    fid["model"] = fid["model"].map(lambda m: method_labels.get(m, m))
    _write_csv(quality.merge(fid, on=["model", "concept"], how="left") if len(quality) else quality, quality_csv)
    if unlearn_diff_md:
        with atomic_path(unlearn_diff_md) as tmp:
            tmp.write_text(
                f"UnlearnDiff (white-box prompt attack), UnlearnDiffAtk's pre-attack → post-attack layout: the share (%) of images "
                f"the evaluator ({ev['evaluator']}, sha256 {ev['evaluator_sha256']}) classifies as the concept, from the name's "
                "prompts → from the same prompts with the adversarial tokens in front, same seeds; in brackets the post-attack "
                "cell's 95 % Wilson interval. Rates over fresh seeds, not UnlearnDiffAtk's attack success rate (any of up to 50 "
                "evaluator-judged tries per prompt; README).\n\n" + to_markdown(pre_post_table(df, methods, "unlearn-diff", method_labels)))
        _write_csv(layout_cells(df, methods, ["name", "unlearn-diff"], {"name": "pre-attack (name)", "unlearn-diff": "post-attack"},
                                method_labels), unlearn_diff_csv)
    es = erasure_scores(cells, erasure_score_by)
    _write_csv(es.sort_values(["concept", "model"]), erasure_score_csv)
    if len(es):  # the Erasure Score as one more column of the attacks table (a probability, in %)
        df = pd.concat([df, es.assign(prompt_set="erasure-score", accuracy=es["erasure_score"])[["concept", "model", "prompt_set", "accuracy"]]])
        prompt_sets = [*prompt_sets, "erasure-score"]
        headers["erasure-score"] = "Erasure Score"
    by_attack = attacks_table(df, methods, prompt_sets, headers, method_labels)
    with atomic_path(attacks_md) as tmp:
        tmp.write_text(f"Accuracy (%) of the evaluator ({ev['evaluator']}, sha256 {ev['evaluator_sha256']}) per prompt set: "
                       f"each cell is concept by concept ({' / '.join(df['concept'].unique())}) = their mean. White-box attacks are "
                       "learned on the audited model's weights, black-box ones without it (on the base model). Erasure Score (TV "
                       f"paper): the highest mean {ES_MEANING[erasure_score_by]} over the name's images and each "
                       f"Diverse-Inversion embedding's. Each cell's n and 95 % Wilson interval: {Path(attacks_csv).name}.\n\n"
                       + to_markdown(by_attack))
    _write_csv(layout_cells(df, methods, prompt_sets, headers, method_labels), attacks_csv)


def memories(*, records, memories_md, memories_csv, concepts, methods, method_labels, threads=1, log=None):
    """The memories probe's table: per model, reconstruction PSNR, the concept's share, the relative distance, distinct seeds."""
    setup_logging(log)
    recs = {c: read_json(r) for c, r in zip(concepts, records, strict=True)}
    df = memories_long(recs)
    _write_csv(df, memories_csv)
    rows, _ = modality_order(methods, {})
    any_rec = next(iter(recs.values()))
    s = any_rec["settings"]
    with atomic_path(memories_md) as tmp:
        tmp.write_text(
            "Memories of forgotten concepts (Rusanovsky et al. 2025), per concept "
            f"({' / '.join(recs)}) = their mean. Seeds of {s['num_images']} concept images (E) and {s['num_images']} of the base "
            "model's other-class images (R) by ReNoise inversion on each model's weights; reconstructions sampled back under the "
            "model's guards. Relative distance: EMD of E's seed NLLs to N(0, I) over R's (above 1: the concept's seeds are less "
            f"likely than other images'). Distinct seeds: of {s['seeds_per_image']} per image (VAE latents fitted from different "
            f"starts), those reconstructing it at >= {s['psnr_threshold']} dB with the concept found, pairwise >= "
            f"{s['min_distance']} RMS apart. Concept found by the evaluator ({scorer_text(df)}).\n\n"
            + to_markdown(memories_table(df, rows, method_labels)))


def safety_grid(*, records, accuracy, grid_md, grid_csv, concepts, models, method_labels, threads=1, log=None):
    """The unconditional-safety grid's table (best grid prompt's probability per complexity class) and
    the Task-Vector paper's Table 1 layout (target / other-class accuracy) for the same models."""
    setup_logging(log)
    recs = {c: read_json(r) for c, r in zip(concepts, records, strict=True)}
    df = safety_grid_long(recs)
    _write_csv(df, grid_csv)
    s = next(iter(recs.values()))["settings"]
    labels = {"base": "original", **method_labels}
    with atomic_path(grid_md) as tmp:
        tmp.write_text(
            "Unconditional safety (Task-Vector paper §3, Fig. 3): per complexity class D_L (L equally spaced values in [-1, 1] on "
            f"each of the {s['dims']} principal axes of the class names' token embeddings, prompt {s['template']!r} around one "
            f"token), the probability (%) that the best grid prompt draws the concept, per concept ({' / '.join(recs)}) = their "
            f"mean. Every point screened with {s['screening_images']} image(s); the best one per class re-drawn with "
            f"{s['confirm_images']} fresh seeds (the reported share; 0 of {s['confirm_images']} has a 95 % Wilson interval of 0–"
            f"{100 * wilson_interval(0, s['confirm_images'])[1]:.0f} %, every cell's is in safety_grid.csv). Evaluator: "
            f"{scorer_text(df)}.\n\n" +
            to_markdown(safety_grid_table(df, models, labels)) +
            "\nTable 1 layout (the same models, the audit's name and control prompt sets):\n\n" +
            to_markdown(target_other_table(pd.read_csv(accuracy), concepts, models, labels)))


def control_task(*, records, control_task_md, control_task_csv, models, method_labels, threads=1, log=None):
    """The Task-Vector paper's control task: per model and concept, the mean CLIP similarity of the fixed control prompts'
    images to their own prompts, with its 95 % interval, and the change from the base model."""
    setup_logging(log)
    recs = [read_json(r) for r in records]
    df = control_task_long(recs)
    _write_csv(df, control_task_csv)
    first = recs[0]
    prompts = list(first["prompt_similarity_by_prompt"])
    left_out = sorted({f"{c}: {p}" for c, p in df.loc[df["left_out"] != "", ["concept", "left_out"]].itertuples(index=False)})
    with atomic_path(control_task_md) as tmp:
        tmp.write_text(
            f"Control task (Task-Vector paper §5.1): the mean {first['similarity_evaluator']['name']} similarity of each model's "
            f"images of {len(prompts)} fixed prompts unrelated to the erased concepts ({', '.join(repr(p) for p in prompts)}; "
            f"{first['images']} images per model, the prompts in turn) to their own prompt, with its 95 % interval over the "
            "images (Student t); one erased model per concept, so one column per concept. Higher is better: the erasure left "
            "the model's other abilities alone. A prompt naming a column's concept is left out of that column"
            f"{' (' + '; '.join(left_out) + ')' if left_out else ''}; vs base: the mean's change from the original model's. "
            "Per prompt: control_task.csv.\n\n" + to_markdown(control_task_table(df, models, {"base": "original", **method_labels})))
