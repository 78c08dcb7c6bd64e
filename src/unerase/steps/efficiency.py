"""Efficiency step: the run's time, memory and disk per stage, method and attack (unerase.efficiency).
Its own module: the table steps import torch (evaluation), this one needs pandas only."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path
from ..efficiency import efficiency_table, job_costs, readable
from ..progress import setup_logging
from ..hardware import cpu_model
from ..tables import to_markdown


def run(*, efficiency_csv, efficiency_md, methods, attacks, models, concepts, inline_attacks, threads=1, log=None, **_done):
    """`_done`: the audit's outputs, inputs so that this job comes after every job it sums. The results folder is
    the one the table is written in (results/tables/efficiency.csv); the benchmark files are under it."""
    setup_logging(log)
    results = Path(efficiency_csv).parents[1]
    benchmarks = results / "benchmarks"
    table = efficiency_table(job_costs(benchmarks, methods, attacks, models, concepts), results, concepts, inline_attacks,
                             models)
    with atomic_path(efficiency_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(efficiency_md) as tmp:
        tmp.write_text(f"Time, peak memory and disk per stage, erasure method and attack, summed over {len(concepts)} concept(s), "
                       f"from each job's Snakemake benchmark (wall time includes a job's start-up), on {cpu_model()}. "
                       "CPU s is the benchmark's last sample (every 0.5 s for a job's first 15 s, then every 30 s), so it "
                       "misses up to 30 s at the end of a job. Attacks learned in the generation jobs: their own seconds, "
                       "from their records, part of the generation row's time.\n\n"
                       + to_markdown(readable(table)))
