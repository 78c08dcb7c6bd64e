"""Replicates over seeds: each seed is an independent run of the whole workflow (its own base model,
evaluator, concept images, erasures and attacks), so the spread between seeds is the spread a researcher
sees. The workflow writes it as results/tables/seeds.{md,csv} when `seeds` lists replicates
(rules/replicates.smk); by hand, over runs made elsewhere:

    python -m unerase.seed_summary runs/seed-*/results/tables/accuracy.csv

prints, per (concept, model, prompt set), every seed's accuracy, the mean and a 95 % interval for
the mean (Student t over seeds), and each seed's `unerase.acceptance` verdict.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from .acceptance import run_checks

# The cells README reports per seed: erased / after Concept Inversion for ESD-x and TV.
REPORTED = [("esd-x", "name"), ("esd-x", "inversion"), ("tv", "name"), ("tv", "inversion"), ("esd-x", "control"), ("tv", "control")]


def seed_order(seeds) -> list[str]:
    """Seeds (as read, strings) in numeric order: "2" before "10"."""
    return sorted(seeds, key=lambda s: (len(s), s))


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval for the mean of independent replicates; a single value
    has no interval (low = high = NaN), no value not even a mean (all NaN)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _tv_alpha(table_path: str, concept: str) -> float:
    """The α the run chose for `concept` (results/erased/<concept>/tv/erasure.json beside
    results/tables/accuracy.csv; alpha_choice.json in runs before the erasure registry), NaN if none."""
    tv = Path(table_path).resolve().parents[1] / "erased" / concept / "tv"
    for record in (tv / "erasure.json", tv / "alpha_choice.json"):
        if record.is_file():
            return float(json.loads(record.read_text())["alpha"])
    return math.nan


def load_runs(paths: list[str], seeds: list | None = None) -> pd.DataFrame:
    """One long table of every run; a run's `seed` is `seeds[i]`, else read from its path (…seed-N…) or numbered."""
    if seeds is not None and len(seeds) != len(paths):
        raise ValueError(f"{len(paths)} tables but {len(seeds)} seeds")
    frames = []
    for i, path in enumerate(paths):
        df = pd.read_csv(path)
        seed = str(seeds[i]) if seeds is not None else next(
            (part.split("-", 1)[1] for part in Path(path).parts if part.startswith("seed-")), str(i))
        alphas = {c: _tv_alpha(path, c) for c in df["concept"].unique()}
        frames.append(df.assign(seed=seed, tv_alpha=df["concept"].map(alphas)))
    return pd.concat(frames, ignore_index=True)


def per_seed_table(df: pd.DataFrame, cells=REPORTED) -> pd.DataFrame:
    """Rows: concept × seed, then a mean and a 95 % interval row per concept; columns: the cells."""
    acc = df.set_index(["seed", "concept", "model", "prompt_set"])["accuracy"]
    seeds = seed_order(df["seed"].unique())
    alpha = df.groupby(["seed", "concept"])["tv_alpha"].first() if "tv_alpha" in df else pd.Series(dtype=float)
    rows = []
    for concept in sorted(df["concept"].unique()):
        for seed in seeds:
            rows.append({"concept": concept, "seed": seed,
                         **{f"{m} {s}": 100 * float(acc.get((seed, concept, m, s), math.nan)) for m, s in cells},
                         "tv alpha": f"{alpha.get((seed, concept), math.nan):g}"})
        summary = {f"{m} {s}": mean_interval([100 * float(acc[(seed, concept, m, s)]) for seed in seeds if (seed, concept, m, s) in acc])
                   for m, s in cells}
        rows.append({"concept": concept, "seed": "mean [95 % CI]", **summary, "tv alpha": ""})
    return pd.DataFrame(rows)


def every_cell(df: pd.DataFrame) -> pd.DataFrame:
    """Every (concept, model, prompt set) cell over the seeds, in %: n, mean, the 95 % interval for the mean
    (Student t, cut to [0, 100] since a rate cannot leave it; none for n = 1), each seed's value (`seed <s>`
    columns; empty where a run lacks the cell) and, where the tables carry them, each seed's evaluator and weights'
    sha256 (`evaluators`)."""
    seeds = seed_order(df["seed"].unique())
    wide = df.pivot_table(index=["concept", "model", "prompt_set"], columns="seed", values="accuracy", aggfunc="first", sort=False)
    # which evaluator scored each seed's cells (the digits model's replicates train their own classifier): "seed: sha256"
    scored_by = ({seed: f"{seed}: {group['evaluator'].iloc[0]} {group['evaluator_sha256'].iloc[0]}"
                  for seed, group in df.dropna(subset=["evaluator_sha256"]).groupby("seed")}
                 if {"evaluator", "evaluator_sha256"} <= set(df.columns) else {})
    rows = []
    for (concept, model, prompt_set), values in wide.iterrows():
        present = [100 * float(values[s]) for s in seeds if s in values and not math.isnan(values[s])]
        mean, low, high = mean_interval(present)
        low, high = (low, high) if math.isnan(low) else (max(low, 0.0), min(high, 100.0))
        rows.append({"concept": concept, "model": model, "prompt_set": prompt_set, "n": len(present), "mean": mean,
                     "ci_low": low, "ci_high": high,
                     **{f"seed {s}": 100 * float(values[s]) if s in values else math.nan for s in seeds},
                     **({"evaluators": "; ".join(scored_by[s] for s in seeds if s in scored_by)} if scored_by else {})})
    return pd.DataFrame(rows)


def every_cell_markdown(cells: pd.DataFrame, prompt_sets=("name", "inversion", "control")) -> str:
    """Rows concept × model, columns the prompt sets: "mean [low, high]" over the seeds (n in the header)."""
    shown = [p for p in prompt_sets if p in set(cells["prompt_set"])]

    def seeds_counted(prompt_set):
        n = cells.loc[cells["prompt_set"] == prompt_set, "n"]
        return f"n = {n.min()}" if n.min() == n.max() else f"n = {n.min()}–{n.max()}"

    lines = ["| concept | model | " + " | ".join(f"{p} ({seeds_counted(p)})" for p in shown) + " |", "|" + " --- |" * (2 + len(shown))]
    for (concept, model), part in cells.groupby(["concept", "model"], sort=False):
        by_set = part.set_index("prompt_set")
        lines.append(f"| {concept} | {model} | " + " | ".join(
            _fmt((by_set.at[p, "mean"], by_set.at[p, "ci_low"], by_set.at[p, "ci_high"])) if p in by_set.index else "–"
            for p in shown) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if isinstance(value, tuple):
        mean, lo, hi = value
        if math.isnan(mean):
            return "–"
        return f"{mean:.0f}" if math.isnan(lo) else f"{mean:.0f} [{max(lo, 0):.0f}, {min(hi, 100):.0f}]"
    return "–" if isinstance(value, float) and math.isnan(value) else f"{value:.0f}" if isinstance(value, float) else str(value)


def verdicts(df: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """seed -> (checks passed, checks failed) of unerase.acceptance on that seed's table."""
    out = {}
    for seed, part in df.groupby("seed"):
        checks = run_checks(part)
        out[seed] = (sum(c.ok for c in checks), sum(not c.ok for c in checks))
    return out


def to_markdown(table: pd.DataFrame, checks: dict[str, tuple[int, int]]) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    passed = [s for s, (_, failed) in checks.items() if failed == 0]
    lines.append("")
    lines.append("acceptance per seed: " + ", ".join(f"seed {s}: {checks[s][0]} passed / {checks[s][1]} failed" for s in seed_order(checks)))
    lines.append(f"seeds passing every check: {len(passed)} of {len(checks)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", help="accuracy.csv of each seed's run")
    args = parser.parse_args(argv)
    df = load_runs(args.tables)
    print(to_markdown(per_seed_table(df), verdicts(df)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
