"""The efficiency table (issue #9): time, peak memory and disk per erasure method, attack, probe and
stage of a run, from the `benchmark:` file Snakemake writes for every job
(results/benchmarks/<rule>/<wildcards>.tsv: wall seconds `s`, `cpu_time`, peak resident `max_rss` MB)
and the sizes of each job's outputs. A job's wall time includes its start-up (Python and imports)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class JobCost:
    stage: str
    name: str
    concept: str | None
    wall_s: float
    cpu_s: float
    peak_mb: float


def read_benchmark(path: str | Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one benchmark file (its first repeat)."""
    row = pd.read_csv(path, sep="\t").iloc[0]
    return float(row["s"]), float(row["cpu_time"]), float(row["max_rss"])


CONTROL_TASK = "control task (fixed prompts of one model)"


def classify(relative: Path, methods: set[str], attacks: set[str], models: set[str], concepts: set[str]) -> tuple[str, str, str | None] | None:
    """(stage, name, concept) of the job whose benchmark file is `relative` (under results/benchmarks/),
    or None for a job of another config (a method, attack, model or concept this run does not audit)."""
    rule, *parts = relative.with_suffix("").parts
    if rule in ("train_vae", "train_text_to_image", "train_classifier"):
        return "base model", rule, None
    if rule == "concept_images" and parts[0] in concepts:
        return "setup", "concept images", parts[0]
    if rule == "finetune_on_concept" and parts[0] in concepts:
        return "erasure", "fine-tune (shared by the task vectors)", parts[0]
    if rule == "erase" and parts[0] in concepts and parts[1] in methods:
        return "erasure", parts[1], parts[0]
    if rule == "attack" and parts[0] in attacks and parts[1] in concepts and parts[2] in models:
        return "attack", parts[0], parts[1]
    if rule == "generate" and parts[0] in concepts and parts[1] in models:
        return "generation", "generate (every prompt set of one model)", parts[0]
    if rule == "generate_control_task" and parts == ["base"]:  # drawn once for every concept
        return "generation", CONTROL_TASK, None
    if rule == "generate_control_task" and parts[0] in concepts and parts[1:] and parts[1] in models - {"base"}:  # base: a run before the shared job
        return "generation", CONTROL_TASK, parts[0]
    if rule == "score_control_task" and parts[0] in concepts:
        return "evaluation", "score the control task", parts[0]
    if rule in ("memories", "safety_grid") and parts[0] in concepts:
        return "probe", rule.replace("_", " "), parts[0]
    if rule == "evaluate" and parts[0] in concepts:
        return "evaluation", "evaluate", parts[0]
    return None


def job_costs(benchmarks: str | Path, methods, attacks, models, concepts) -> list[JobCost]:
    root = Path(benchmarks)
    costs = []
    for path in sorted(root.rglob("*.tsv")):
        where = classify(path.relative_to(root), set(methods), set(attacks), set(models), set(concepts))
        if where is not None:
            costs.append(JobCost(*where, *read_benchmark(path)))
    return costs


def disk_mb(paths) -> float:
    """Total size in MB of the files and folders `paths` (missing ones count 0)."""
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total / 2**20


def output_paths(stage: str, name: str, results: Path, concepts, models=None) -> list[Path]:
    """Where a (stage, name)'s jobs write, for the disk column (attacks and generations: of `models` only, when
    given; results/ may hold files of models an earlier config audited)."""
    audited = (lambda model: True) if models is None else set(models).__contains__
    if stage == "base model":
        return {"train_vae": [results / "embedded/vae"], "train_text_to_image": [results / "embedded/model"],
                "train_classifier": [results / "evaluator"]}[name]
    if stage == "setup":
        return [results / "concept_images" / c for c in concepts]
    if stage == "erasure":
        return [results / ("finetuned" if name.startswith("fine-tune") else "erased") / c / ("" if name.startswith("fine-tune") else name)
                for c in concepts]
    if stage == "attack":
        return [d for c in concepts for d in (results / "attacks" / c).glob(f"*/{name}") if audited(d.parent.name)]
    if stage == "generation" and name == CONTROL_TASK:
        return [f for c in concepts for f in (results / "generations" / c).glob("*/control-prompts.*")
                if f.parent.name != "base" and audited(f.parent.name)] + [
            results / "generations" / "control-task-base"]
    if stage == "generation":
        return [f for c in concepts for d in (results / "generations" / c).glob("*") if audited(d.name)
                for f in d.rglob("*") if not f.name.startswith("control-prompts.")]
    if stage == "probe":
        return [results / "probes" / c / f"{name.replace(' ', '_')}.json" for c in concepts]
    return [results / "metrics" / c for c in concepts]


STAGES = ["base model", "setup", "erasure", "attack", "generation", "probe", "evaluation"]


def learned_in_generation(results: str | Path, models=None) -> list[tuple[str, str, str, float]]:
    """(concept, model, attack, seconds) of every attack learned inside a generation job: its record (attack.json)
    has no attack job's benchmark file (where a model has no generation job, an attack job learns it: a job row).
    `models`: only those models' records (results/ may hold records of models an earlier config audited)."""
    results = Path(results)
    out = []
    for record in sorted(results.glob("attacks/*/*/*/attack.json")):
        concept, model, attack = record.parts[-4:-1]
        if models is not None and model not in models:
            continue
        if not (results / "benchmarks" / "attack" / attack / concept / f"{model}.tsv").exists():
            out.append((concept, model, attack, float(json.loads(record.read_text()).get("seconds", 0.0))))
    return out


def inline_seconds(results: Path, name: str, concepts, models=None) -> float:
    """Seconds attack `name` took inside the generation jobs of these concepts (and models, when given)."""
    return sum(s for c, _, a, s in learned_in_generation(results, models) if a == name and c in set(concepts))


def efficiency_table(costs: list[JobCost], results: str | Path, concepts, inline_attacks=(), models=None) -> pd.DataFrame:
    """One row per (stage, name): jobs, wall and CPU seconds (total and per concept), peak memory, disk.
    `inline_attacks`: attacks learned inside the generation jobs: no job of their own, their seconds from their
    records (part of the generation jobs' wall time, not added to it). `models`: the audited models; attack records
    and generations of other models (an earlier config's, still in results/) are left out, as job_costs does."""
    results = Path(results)
    df = pd.DataFrame([c.__dict__ for c in costs], columns=list(JobCost.__dataclass_fields__))
    rows = []
    for (stage, name), group in df.groupby(["stage", "name"], sort=False):
        per_concept = len(concepts) if group["concept"].notna().any() else 1
        rows.append(dict(stage=stage, name=name, jobs=len(group), wall_s=group["wall_s"].sum(), cpu_s=group["cpu_s"].sum(),
                         wall_s_per_concept=group["wall_s"].sum() / per_concept, peak_mb=group["peak_mb"].max(),
                         disk_mb=disk_mb(output_paths(stage, name, results, concepts, models))))
    for name in inline_attacks:
        seconds = inline_seconds(results, name, concepts, models)
        rows.append(dict(stage="attack", name=f"{name} (in the generation jobs)", jobs=0, wall_s=seconds, cpu_s=float("nan"),
                         wall_s_per_concept=seconds / len(concepts), peak_mb=float("nan"),
                         disk_mb=disk_mb(output_paths("attack", name, results, concepts, models))))
    table = pd.DataFrame(rows, columns=["stage", "name", "jobs", "wall_s", "cpu_s", "wall_s_per_concept", "peak_mb", "disk_mb"])
    table["stage"] = pd.Categorical(table["stage"], STAGES, ordered=True)
    return table.sort_values(["stage", "name"], kind="stable").reset_index(drop=True).assign(stage=lambda t: t["stage"].astype(str))


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table with rounded numbers and headers with units, for Markdown."""
    out = table.rename(columns={"wall_s": "wall s", "cpu_s": "CPU s", "wall_s_per_concept": "wall s per concept",
                                "peak_mb": "peak memory MB", "disk_mb": "disk MB"})
    for col in ("wall s", "CPU s", "wall s per concept", "peak memory MB"):
        out[col] = out[col].map(lambda v: "–" if pd.isna(v) else f"{v:.0f}")
    out["disk MB"] = out["disk MB"].map(lambda v: f"{v:.2f}" if v < 10 else f"{v:.0f}")
    return out
