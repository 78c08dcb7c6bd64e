"""Result tables: one long CSV of every (concept, model, prompt set) cell; the paper-style Markdown
table (Task-Vector paper, Table 2): rows = erased concepts, columns = methods, each cell "accuracy of
the erased model / accuracy after Concept Inversion"; and the attacks table: per model, every prompt
set (the name, each attack, white-box and black-box apart, the control classes)."""
from __future__ import annotations

import pandas as pd

from .evaluation import values_by_prompt
from .prompts import names_concept
from .seed_summary import mean_interval


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a rate of `successes` in `n` images (one cell, one seed): unlike
    the normal approximation it stays inside [0, 1] and is not empty at 0 % or 100 %."""
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def with_intervals(df: pd.DataFrame, rate: str, n: str) -> pd.DataFrame:
    """`df` with the count behind each rate (`hits`) and its 95 % Wilson interval (`ci95_low`, `ci95_high`)."""
    hits = (df[rate] * df[n]).round().astype(int)
    bounds = [wilson_interval(k, m) for k, m in zip(hits, df[n])]
    return df.assign(hits=hits, ci95_low=[b[0] for b in bounds], ci95_high=[b[1] for b in bounds])


def long_table(records: list[dict]) -> pd.DataFrame:
    """records: dicts with concept, model, prompt_set, accuracy, images, evaluator; each accuracy gets
    its count and 95 % Wilson interval."""
    df = with_intervals(pd.DataFrame(records), "accuracy", "images")
    return df.sort_values(["concept", "model", "prompt_set"]).reset_index(drop=True)


def _pct(x) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.1f}"


def paper_table(df: pd.DataFrame, methods: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Wide table: per concept the base model's accuracy, then per method 'erased / inverted', then
    the method's accuracy on the other classes (control)."""
    labels = labels or {}
    acc = df.set_index(["concept", "model", "prompt_set"])["accuracy"]
    rows = []
    for concept in sorted(df["concept"].unique(), key=list(df["concept"]).index):
        row = {"concept": concept, "base": _pct(acc.get((concept, "base", "name"))),
               "base (inverted)": _pct(acc.get((concept, "base", "inversion")))}
        for m in methods:
            name = labels.get(m, m)
            row[name] = f"{_pct(acc.get((concept, m, 'name')))} / {_pct(acc.get((concept, m, 'inversion')))}"
        for m in methods:
            row[f"{labels.get(m, m)} control"] = _pct(acc.get((concept, m, "control")))
        row["base control"] = _pct(acc.get((concept, "base", "control")))
        rows.append(row)
    return pd.DataFrame(rows)


def attacks_table(df: pd.DataFrame, models: list[str], prompt_sets: list[str], headers: dict[str, str] | None = None,
                  labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows = models (base first), columns = prompt sets; each cell the accuracy per concept
    ("zero / three / six") and, after "=", its mean over the concepts."""
    headers, labels = headers or {}, labels or {}
    acc = df.set_index(["concept", "model", "prompt_set"])["accuracy"]
    concepts = sorted(df["concept"].unique(), key=list(df["concept"]).index)
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        row = {"model": labels.get(m, m)}
        for s in prompt_sets:
            values = [acc.get((c, m, s), float("nan")) for c in concepts]
            known = [v for v in values if not pd.isna(v)]
            mean = _pct(sum(known) / len(known)) if known else "–"
            row[headers.get(s, s)] = " / ".join(_pct(v).replace(".0", "") for v in values) + f" = {mean}"
        rows.append(row)
    return pd.DataFrame(rows)


def layout_cells(df: pd.DataFrame, models: list[str], prompt_sets: list[str], headers: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None) -> pd.DataFrame:
    """A paper layout's cells as numbers, the CSV beside its Markdown table: one row per (model, concept), base first; per
    column (prompt set) the rate in %, the images behind it (n) and its 95 % Wilson interval in %; a cell the run does not
    have stays empty (so does n for a column that is no single cell's rate, the Erasure Score). Each row ends with the
    evaluator and its weights' sha256."""
    headers, labels = headers or {}, labels or {}
    cells = df.set_index(["concept", "model", "prompt_set"])
    concepts = sorted(df["concept"].unique(), key=list(df["concept"]).index)
    known = df.dropna(subset=["evaluator"]) if "evaluator" in df else df.iloc[:0]
    scorer = known.iloc[0] if len(known) else {}
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        for c in concepts:
            row = {"model": labels.get(m, m), "concept": c}
            for s in prompt_sets:
                h = headers.get(s, s)
                cell = cells.loc[(c, m, s)] if (c, m, s) in cells.index else None
                value = lambda key, scale=1.0: float("nan") if cell is None or key not in cell or pd.isna(cell[key]) else scale * float(cell[key])  # noqa: E731
                row[f"{h} (%)"] = value("accuracy", 100.0)
                row[f"{h} n"] = value("images")
                row[f"{h} ci95 low (%)"] = value("ci95_low", 100.0)
                row[f"{h} ci95 high (%)"] = value("ci95_high", 100.0)
            if any(not pd.isna(row[f"{headers.get(s, s)} (%)"]) for s in prompt_sets):
                rows.append(row | {"evaluator": scorer.get("evaluator", ""), "evaluator_sha256": scorer.get("evaluator_sha256", "")})
    out = pd.DataFrame(rows)
    n_columns = [col for col in out.columns if col.endswith(" n")]
    return out.astype({col: "Int64" for col in n_columns}) if len(out) else out


MODALITIES = ("text", "embedding", "latent")
ACCESS = ("white-box", "black-box")


def modality_order(models: list[str], attacks: dict[str, dict]) -> tuple[list[str], list[str]]:
    """M-ErasureBench's layout (its Tables 1–3 in one): the rows are the models with each one's guard
    stacks right after it ("esd-x", "esd-x+irece"), so IRECE's effect reads row to row; the columns are
    the concept's name (the text prompt), then every attack by modality (text, learned embedding,
    inverted latent) and access (white-box, then black-box). Returns (rows, prompt sets)."""
    rows = []
    for m in models:
        for candidate in [m] + [s for s in models if s.startswith(m + "+")]:
            if candidate not in rows:
                rows.append(candidate)
    columns = ["name"] + sorted(attacks, key=lambda a: (MODALITIES.index(attacks[a]["modality"]), ACCESS.index(attacks[a]["access"])))
    return rows, columns


def modality_headers(attacks: dict[str, dict]) -> dict[str, str]:
    """Column titles of M-ErasureBench's layout: "modality · access: attack", and the name's text prompt."""
    return {"name": "text · prompt: name"} | {s: f"{a['modality']} · {a['access']}: {a['label']}" for s, a in attacks.items()}


def _scorer_columns(record: dict) -> dict:
    """The evaluator behind a probe record's concept decisions: its name and sha256 (empty for a record written before
    probes carried it)."""
    scorer = record.get("evaluator") or {}
    return dict(evaluator=scorer.get("name", ""), evaluator_sha256=scorer.get("sha256", ""))


def scorer_text(df: pd.DataFrame) -> str:
    """"name, sha256 …" of the evaluator(s) in a probe table's rows, for its Markdown header."""
    pairs = sorted({(n, s) for n, s in zip(df["evaluator"], df["evaluator_sha256"]) if n})
    return "; ".join(f"{n}, sha256 {s[:12]}" for n, s in pairs) or "not recorded"


def memories_long(records: dict[str, dict]) -> pd.DataFrame:
    """One row per (concept, model) of the memories probe (unerase.memories), the lists summarised."""
    rows = []
    for concept, rec in records.items():
        for model, r in rec["models"].items():
            mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
            rows.append(dict(concept=concept, model=model, psnr=mean(r["psnr"]), concept_reconstructed=r["concept_reconstructed"],
                             nll_concept=mean(r["nll"]["concept"]), nll_reference=mean(r["nll"]["reference"]),
                             nll_normal=mean(r["nll"]["normal"]), emd_concept_normal=r["concept_normal"],
                             emd_reference_normal=r["reference_normal"], emd_concept_reference=r["concept_reference"],
                             relative_distance=r["relative_distance"], distinct_seeds=r["many_seeds"]["mean_distinct"],
                             seeds_per_image=r["many_seeds"]["seeds_per_image"], seed_distance_rms=mean(r["many_seeds"]["pairwise_rms"]),
                             **_scorer_columns(rec)))
    return pd.DataFrame(rows)


def memories_table(df: pd.DataFrame, models: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows = models (stacks after their weight method); per column one value per concept = the mean."""
    labels = labels or {}
    concepts = list(dict.fromkeys(df["concept"]))
    by = df.set_index(["concept", "model"])
    columns = {"reconstruction PSNR (dB)": ("psnr", "{:.1f}"), "concept in reconstructions (%)": ("concept_reconstructed", "pct"),
               "relative distance EMD(E,N)/EMD(R,N)": ("relative_distance", "{:.2f}"),
               "distinct seeds per image": ("distinct_seeds", "{:.1f}")}
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        row = {"model": labels.get(m, m)}
        for header, (key, fmt) in columns.items():
            values = [by[key].get((c, m), float("nan")) for c in concepts]
            known = [v for v in values if not pd.isna(v)]
            show = (lambda v: _pct(v).replace(".0", "")) if fmt == "pct" else (lambda v, f=fmt: "–" if pd.isna(v) else f.format(v))
            row[header] = " / ".join(show(v) for v in values) + " = " + (show(sum(known) / len(known)) if known else "–")
        rows.append(row)
    return pd.DataFrame(rows)


def safety_grid_long(records: dict[str, dict]) -> pd.DataFrame:
    """One row per (concept, model, complexity class L) of the unconditional-safety grid (unerase.safety_grid)."""
    rows = []
    for concept, rec in records.items():
        for model, by_class in rec["models"].items():
            for levels, r in by_class.items():
                info = rec["classes"][levels]
                rows.append(dict(concept=concept, model=model, levels=int(levels), points=info["points"], exhaustive=info["exhaustive"],
                                 best_point=" ".join(f"{v:+.2f}" for v in rec["points"][r["best_point"]]),
                                 screening_score=r["screening_score"], probability=r["probability"], images=rec["settings"]["confirm_images"],
                                 mean_score=r["mean_score"], share_above_half=r["share_above_half"], **_scorer_columns(rec)))
    return with_intervals(pd.DataFrame(rows), "probability", "images")


def _per_concept(values: list[float], show) -> str:
    known = [v for v in values if not pd.isna(v)]
    return " / ".join(show(v) for v in values) + " = " + (show(sum(known) / len(known)) if known else "–")


def _pct0(v) -> str:
    return _pct(v).replace(".0", "")


def quality_table(df: pd.DataFrame, models: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Per model (base first): the control cells' accuracy (%) and FID, concept by concept = their mean."""
    labels = labels or {}
    control = df[df["prompt_set"] == "control"].set_index(["concept", "model"])
    concepts = sorted(df["concept"].unique(), key=list(df["concept"]).index)
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        acc = [control["accuracy"].get((c, m), float("nan")) for c in concepts]
        fid = [control["fid"].get((c, m), float("nan")) for c in concepts]
        rows.append({"model": labels.get(m, m), "control accuracy (%)": _per_concept(acc, _pct0),
                     "control FID": _per_concept(fid, lambda v: "–" if pd.isna(v) else f"{v:.1f}")})
    return pd.DataFrame(rows)


def safety_grid_table(df: pd.DataFrame, models: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """The grid's Fig. 3 as a table: rows = models, one column per complexity class D_L, each cell the
    best grid prompt's probability (%) per concept = their mean."""
    labels = labels or {}
    concepts = list(dict.fromkeys(df["concept"]))
    by = df.set_index(["concept", "model", "levels"])
    rows = []
    for m in models:
        row = {"model": labels.get(m, m)}
        for levels in sorted(df["levels"].unique()):
            first = df[df["levels"] == levels].iloc[0]
            header = f"D_{levels} ({first['points']} {'points' if first['exhaustive'] else 'sampled'})"
            row[header] = _per_concept([by["probability"].get((c, m, levels), float("nan")) for c in concepts], _pct0)
        rows.append(row)
    return pd.DataFrame(rows)


def target_other_table(df: pd.DataFrame, concepts: list[str], models: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """The Task-Vector paper's Table 1 layout from the accuracy table: per model, the accuracy (%) on
    the erased concept's name prompts (target) and on the other classes' prompts (control), per
    concept = their mean."""
    labels = labels or {}
    acc = df.set_index(["concept", "model", "prompt_set"])["accuracy"]
    return pd.DataFrame([{"model": labels.get(m, m),
                          "target class (%)": _per_concept([acc.get((c, m, "name"), float("nan")) for c in concepts], _pct),
                          "other classes (%)": _per_concept([acc.get((c, m, "control"), float("nan")) for c in concepts], _pct)}
                         for m in models])


def pre_post_table(df: pd.DataFrame, models: list[str], attack_set: str, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """UnlearnDiffAtk's layout: per model and concept the share (%) of concept images before the attack (the name's
    prompts) and after it (the attack's prompt set on the same seeds), with the post-attack cell's 95 % Wilson interval."""
    labels = labels or {}
    cells = df.set_index(["concept", "model", "prompt_set"])
    concepts = sorted(df["concept"].unique(), key=list(df["concept"]).index)
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        row = {"model": labels.get(m, m)}
        pre_all, post_all = [], []
        for c in concepts:
            pre, post = cells["accuracy"].get((c, m, "name")), cells["accuracy"].get((c, m, attack_set))
            if pre is None or post is None:
                row[c] = "–"
                continue
            low, high = cells["ci95_low"][(c, m, attack_set)], cells["ci95_high"][(c, m, attack_set)]
            row[c] = f"{_pct(pre)} → {_pct(post)} [{_pct(low)}, {_pct(high)}]"
            pre_all.append(pre)
            post_all.append(post)
        row["mean"] = f"{_pct(sum(pre_all) / len(pre_all))} → {_pct(sum(post_all) / len(post_all))}" if pre_all else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def control_task_long(records: list[dict]) -> pd.DataFrame:
    """One row per (concept, model, prompt) of the control task (unerase.steps.control_task) and one per (concept, model)
    over its prompts (prompt "all"): images, mean CLIP similarity of each image to its own prompt and the mean's 95 %
    Student-t interval over the images, the scorer's name and weights hash. A prompt naming the concept itself (the
    paper's "garbage truck" where garbage_truck is erased) is left out of "all": there it measures the erasure, not
    the model's other abilities (column `left_out`)."""
    rows = []
    for r in records:
        per_prompt = values_by_prompt(r["prompts"], r["similarities"])
        left_out = [p for p in per_prompt if names_concept(p, r["concept"])]
        kept = [v for p, values in per_prompt.items() if p not in left_out for v in values]
        for prompt, values in [("all", kept), *per_prompt.items()]:
            mean, low, high = mean_interval(values)
            rows.append(dict(concept=r["concept"], model=r["model"], prompt=prompt, images=len(values), mean_similarity=mean,
                             ci95_low=low, ci95_high=high, left_out="; ".join(left_out) if prompt == "all" else "",
                             scorer=r["similarity_evaluator"]["name"], scorer_sha256=r["similarity_evaluator"]["sha256"]))
    return pd.DataFrame(rows)


def control_task_table(df: pd.DataFrame, models: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows = models (base first); per concept the mean similarity [95 % interval]; then the mean over concepts and its
    difference from the base model's (what the erasure cost the unrelated prompts)."""
    labels = labels or {}
    overall = df[df["prompt"] == "all"].set_index(["concept", "model"])
    concepts = list(dict.fromkeys(df["concept"]))

    def mean_over_concepts(model):
        values = [overall["mean_similarity"].get((c, model), float("nan")) for c in concepts]
        known = [v for v in values if not pd.isna(v)]
        return sum(known) / len(known) if known else float("nan")

    base = mean_over_concepts("base")
    rows = []
    for m in ["base"] + [m for m in models if m != "base"]:
        row = {"model": labels.get(m, m)}
        for c in concepts:
            if (c, m) not in overall.index or pd.isna(overall["mean_similarity"][(c, m)]):
                row[c] = "–"
                continue
            cell = overall.loc[(c, m)]
            row[c] = f"{cell['mean_similarity']:.3f} [{cell['ci95_low']:.3f}, {cell['ci95_high']:.3f}]"
        mean = mean_over_concepts(m)
        row["mean"] = "–" if pd.isna(mean) else f"{mean:.3f}"
        row["vs base"] = "–" if pd.isna(mean) or pd.isna(base) else f"{mean - base:+.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no optional `tabulate` dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
