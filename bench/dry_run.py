"""How long Snakemake takes to plan a sweep (issue #10: <= 10 s for 10 concepts x every method x every attack).

  python bench/dry_run.py [--repeats 3]

Times `snakemake -n` (parse the workflow, build the DAG, print the plan; nothing runs) on the default
config (the baseline, measured in the same run) and on the sweep: every class of the embedded default
as a concept, every registered erasure method but `import` plus three stacks, every attack. Writes
bench/results/dry_run.json and prints a Markdown table (README).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from unerase.hardware import cpu_model

ROOT = Path(__file__).resolve().parents[1]

STACKS = ["esd-x+irece", "tv+sld-medium", "uce+np"]


def sweep_overlay() -> dict:
    from unerase.attacks import ATTACKS
    from unerase.erasure import METHODS

    classes = yaml.safe_load((ROOT / "config/config.yaml").read_text())["classes"]
    return {"concepts": list(classes), "erasure": {"methods": [m for m in METHODS if m != "import"] + STACKS},
            "attacks": {"run": list(ATTACKS)}}


def dry_run(workdir: Path, configfiles: list[str]) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed: {proc.stderr[-2000:]}")
    total = next(int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("total"))
    return seconds, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "config").mkdir()
        for f in ("config.yaml", "schema.yaml"):
            (workdir / "config" / f).write_text((ROOT / "config" / f).read_text())
        overlay = workdir / "sweep.yaml"
        overlay.write_text(yaml.safe_dump(sweep_overlay()))
        rows = {}
        for name, files in (("default", []), ("sweep", ["config/config.yaml", str(overlay)])):
            runs = [dry_run(workdir, files) for _ in range(args.repeats)]
            rows[name] = dict(seconds=statistics.median(s for s, _ in runs), jobs=runs[0][1])
    result = dict(cpu=cpu_model(), repeats=args.repeats, **rows,
                  sweep_over_default=rows["sweep"]["seconds"] / rows["default"]["seconds"], methods=sweep_overlay()["erasure"]["methods"])
    out = ROOT / "bench/results/dry_run.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| plan | jobs | `snakemake -n` (median of {args.repeats}) |\n|---|---:|---:|")
    for name in ("default", "sweep"):
        print(f"| {name} | {rows[name]['jobs']} | {rows[name]['seconds']:.1f} s |")
    print(f"\nsweep / default: {result['sweep_over_default']:.2f}x on {result['cpu']}")


if __name__ == "__main__":
    main()
