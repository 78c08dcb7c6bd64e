"""Whole-DAG benchmark: the default workflow's wall time, and CPU seconds per job kind, plus the cost
model later work plans against (what one more erasure method or attack adds per concept).

  python bench/dag_cost.py run --label new [--configfile CFG] [--config seed=1] [--cores 2] [--workdir DIR]
      runs the workflow from scratch in DIR (default: a fresh temporary folder holding config/),
      times it, then summarises its benchmark files into bench/results/dag_<label>.json
  python bench/dag_cost.py summarize RESULTS_DIR --label new --wall SECONDS
      the same summary for a run already made (every rule writes results/benchmarks/<rule>/…tsv)
  python bench/dag_cost.py table bench/results/dag_*.json
      prints the per-rule tables and the cost model as Markdown (README)
  python bench/dag_cost.py timeline .snakemake/log/<run>.snakemake.log [--cores 2] [--threads train_text_to_image=2]
      when each job ran (from Snakemake's own log, to the second) and how many core-seconds sat idle, and when: the
      part of a DAG's wall time that the critical path, not the work, decides

Snakemake's `benchmark:` files give each job's wall seconds (`s`), CPU seconds (`cpu_time`) and
peak resident memory (`max_rss`, MB). Job start-up (Python + torch/diffusers imports) is inside `s`.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from unerase.efficiency import learned_in_generation
from unerase.hardware import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def read_benchmarks(results_dir: Path) -> dict[str, list[dict]]:
    """rule -> one row per job (wall s, cpu s, peak MB, job name). The generic erase rule is split
    per method ("erase:esd-x", from benchmarks/erase/<concept>/<method>.tsv) and the generic attack
    rules per attack ("attack:inversion", from benchmarks/attack/<attack>/…): they differ a lot."""
    jobs = defaultdict(list)
    for tsv in sorted((results_dir / "benchmarks").rglob("*.tsv")):
        parts = tsv.relative_to(results_dir / "benchmarks").parts
        rule = f"erase:{tsv.stem}" if parts[0] == "erase" else f"attack:{parts[1]}" if parts[0] == "attack" else parts[0]
        with tsv.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                jobs[rule].append(dict(job=str(tsv.relative_to(results_dir / "benchmarks").with_suffix("")), wall_s=_num(row.get("s")),
                                       cpu_s=_num(row.get("cpu_time")), max_rss_mb=_num(row.get("max_rss"))))
    return dict(jobs)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0  # Snakemake writes "-" when it could not measure (a job shorter than its sampling)


def inline_attacks(results_dir: Path) -> dict:
    """Attacks learned inside generation jobs (no benchmark file of their own): "inline:<attack>" with the number
    of models it was learned on and the seconds of its records (attack.json), part of the generate rows' time."""
    out = {}
    for _, _, attack, seconds in learned_in_generation(results_dir):
        row = out.setdefault(f"inline:{attack}", dict(jobs=0, wall_s=0.0, cpu_s=0.0, max_rss_mb=0.0))
        row["jobs"] += 1
        row["wall_s"] = round(row["wall_s"] + seconds, 1)
    return out


def summarize(results_dir: Path, label: str, wall_s: float, concepts: int, cores: int) -> dict:
    jobs = read_benchmarks(results_dir)
    rules = {rule: dict(jobs=len(rows), wall_s=round(sum(r["wall_s"] for r in rows), 1), cpu_s=round(sum(r["cpu_s"] for r in rows), 1),
                        max_rss_mb=round(max(r["max_rss_mb"] for r in rows), 1))
             for rule, rows in sorted(jobs.items())}
    rules.update(inline_attacks(results_dir))
    return dict(label=label, wall_s=round(wall_s, 1), cores=cores, concepts=concepts, cpu=cpu_model(), simd=cpu_flags(),
                total_job_wall_s=round(sum(r["wall_s"] for k, r in rules.items() if not k.startswith("inline:")), 1), rules=rules)


def cost_model(summary: dict) -> dict:
    """Seconds of one core per concept that one more method or attack adds, from measured job kinds.
    - an erasure method: its training job (ESD's, measured) + one white-box Concept Inversion on it +
      one generation job (every prompt set) on it;
    - a white-box attack: one attack job per audited model (inversion's, measured) + one prompt set
      generated per model, for every audited model (base + each method);
    - a black-box attack: one attack job (on the base) + one prompt set generated per audited model."""
    r, n = summary["rules"], summary["concepts"]

    def per_job(rule):
        return r[rule]["wall_s"] / r[rule]["jobs"] if rule in r else 0.0

    models_per_concept = r.get("generate", {}).get("jobs", 0) / max(1, n)
    esd = per_job("erase:esd-x") or per_job("erase_esd")  # runs before the erasure registry named the rule erase_esd
    # Concept Inversion: its own job before issue #5's inline slice (attack:inversion; concept_inversion before the
    # attack registry), since then inside the generation job of each model (inline:inversion, part of generate's time)
    separate = per_job("attack:inversion") or per_job("concept_inversion")
    inline = per_job("inline:inversion")
    inversion = separate or inline
    generation_only = per_job("generate") - (inline * r.get("inline:inversion", {}).get("jobs", 0) / max(1, r.get("generate", {}).get("jobs", 1)))
    prompt_set = generation_only / summary.get("prompt_sets", 3)
    method = esd + inversion + generation_only
    white = models_per_concept * (inversion + prompt_set)
    black = per_job("attack:ring-a-bell") + models_per_concept * prompt_set
    return dict(method_core_s_per_concept=round(method, 1), attack_core_s_per_concept=round(white, 1),
                black_box_attack_core_s_per_concept=round(black, 1), models_per_concept=models_per_concept,
                per_job_s={k: round(per_job(k), 1) for k in r})


def run(args) -> None:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="unerase-dag-"))
    shutil.copytree(ROOT / "config", workdir / "config", dirs_exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", str(args.cores)]
    if args.configfile:
        cmd += ["--configfile", str(Path(args.configfile).resolve())]
    if args.config:
        cmd += ["--config", *args.config]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    config = json.loads(subprocess.run([sys.executable, "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
                                        args.configfile or str(ROOT / "config/config.yaml")], capture_output=True, text=True, check=True).stdout)
    summary = summarize(workdir / "results", args.label, wall, len(config["concepts"]), args.cores)
    summary["prompt_sets"] = 2 + len(config["attacks"]["run"])  # the name, each attack, the control classes
    write(summary)


def write(summary: dict) -> None:
    summary["cost_model"] = cost_model(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"dag_{summary['label']}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    print(markdown([summary]))


def markdown(summaries: list[dict]) -> str:
    lines = []
    for s in summaries:
        lines.append(f"**{s['label']}**: {s['wall_s'] / 60:.1f} min wall on {s['cores']} cores ({s['cpu']}, {s['simd']}); "
                     f"job time summed {s['total_job_wall_s'] / 60:.1f} min\n")
        lines.append("| rule | jobs | wall s (sum) | CPU s (sum) | s per job | peak MB |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for rule, r in sorted(s["rules"].items(), key=lambda kv: -kv[1]["wall_s"]):
            lines.append(f"| {rule} | {r['jobs']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['wall_s'] / r['jobs']:.1f} | {r['max_rss_mb']:.0f} |")
        cm = s.get("cost_model") or cost_model(s)
        lines.append(f"\nCost model ({s['label']}): one more erasure method adds about {cm['method_core_s_per_concept']:.0f} "
                     f"core-seconds per concept; one more white-box attack about {cm['attack_core_s_per_concept']:.0f}, "
                     f"a black-box one about {cm.get('black_box_attack_core_s_per_concept', float('nan')):.0f} "
                     f"(over {cm['models_per_concept']:.0f} audited models).\n")
    return "\n".join(lines)


def job_intervals(log_text: str) -> list[dict]:
    """Each job of a Snakemake log: rule, jobid, start and end (seconds from the first event). A job starts at the
    timestamp above its `rule X:` / `localrule X:` block and ends at the one above `Finished jobid: N`."""
    import re
    from datetime import datetime

    stamp, starts, jobs, first = None, {}, [], None
    pending = None  # (rule, start) until its jobid line
    for line in log_text.splitlines():
        if m := re.fullmatch(r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").timestamp()
            first = stamp if first is None else first
        elif stamp is not None and (m := re.fullmatch(r"(?:local)?rule (\S+):", line.strip())):
            pending = (m.group(1), stamp)
        elif pending and (m := re.fullmatch(r"jobid: (\d+)", line.strip())):
            starts[int(m.group(1))] = pending
            pending = None
        elif m := re.match(r"Finished jobid: (\d+)", line.strip()):
            jobid = int(m.group(1))
            if jobid in starts:
                rule, start = starts.pop(jobid)
                jobs.append(dict(rule=rule, jobid=jobid, start=start - first, end=stamp - first))
    return sorted(jobs, key=lambda j: j["start"])


def idle_periods(jobs: list[dict], cores: int, threads: dict[str, int], min_seconds: float = 20) -> tuple[float, list[dict]]:
    """Idle core-seconds over the run (cores minus the threads of the jobs running, each second) and the stretches of
    at least `min_seconds` with a core idle, each with the jobs that ran through it."""
    end = max(j["end"] for j in jobs)
    idle, periods, current = 0.0, [], None
    for t in range(int(end)):
        running = [j for j in jobs if j["start"] <= t < j["end"]]
        free = max(0, cores - sum(threads.get(j["rule"], 1) for j in running))
        idle += free
        if free:
            if current is None:
                current = dict(start=t, end=t + 1, running=set())
            current["end"] = t + 1
            current["running"].update(j["rule"] for j in running)
        elif current is not None:
            periods.append(current)
            current = None
    if current is not None:
        periods.append(current)
    return idle, [dict(p, running=sorted(p["running"])) for p in periods if p["end"] - p["start"] >= min_seconds]


def timeline(args) -> None:
    jobs = job_intervals(Path(args.log).read_text())
    threads = dict(item.split("=") for item in args.threads)
    threads = {rule: int(n) for rule, n in threads.items()}
    idle, periods = idle_periods(jobs, args.cores, threads)
    wall = max(j["end"] for j in jobs)
    print(f"{len(jobs)} jobs, {wall:.0f} s wall on {args.cores} cores: {idle:.0f} core-seconds idle "
          f"({100 * idle / (args.cores * wall):.1f} %)")
    for p in periods:
        print(f"  {p['start']:6.0f}-{p['end']:6.0f} s ({p['end'] - p['start']:4.0f} s) a core idle; running: {', '.join(p['running']) or '-'}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--label", required=True)
    p.add_argument("--configfile")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workdir")
    p.add_argument("--config", nargs="*", help="KEY=VALUE overrides passed to snakemake --config (e.g. seed=1)")
    p = sub.add_parser("summarize")
    p.add_argument("results_dir")
    p.add_argument("--label", required=True)
    p.add_argument("--wall", type=float, required=True, help="the run's wall seconds")
    p.add_argument("--concepts", type=int, default=3)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--prompt-sets", type=int, default=3, help="prompt sets per model: the name, each attack, the control")
    p = sub.add_parser("table")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("timeline")
    p.add_argument("log")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--threads", nargs="*", default=["train_text_to_image=2"], help="RULE=N for rules taking more than one thread")
    args = parser.parse_args(argv)
    if args.cmd == "timeline":
        timeline(args)
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "summarize":
        summary = summarize(Path(args.results_dir), args.label, args.wall, args.concepts, args.cores)
        summary["prompt_sets"] = args.prompt_sets
        write(summary)
    else:
        print(markdown([json.loads(Path(f).read_text()) for f in args.files]))


if __name__ == "__main__":
    main()
