"""Seed-summary step: every replicate's accuracy table side by side, with n, mean and a 95 % interval per cell
and each seed's acceptance verdict (unerase.seed_summary). Pandas and scipy only: no torch."""
from __future__ import annotations

from ..atomic import atomic_path
from ..progress import log as logger
from ..progress import setup_logging
from ..seed_summary import every_cell, every_cell_markdown, load_runs, per_seed_table, to_markdown, verdicts


def run(*, tables, seeds, seeds_csv, seeds_md, threads=1, log=None, **_records):
    """`tables`: each seed's accuracy.csv, in the order of `seeds`. `_records`: the runs' task-vector erasure
    records (the chosen alpha, read beside each table), inputs so that they exist."""
    setup_logging(log)
    df = load_runs(list(tables), seeds)
    cells = every_cell(df)
    checks = verdicts(df)
    with atomic_path(seeds_csv) as tmp:
        cells.to_csv(tmp, index=False)
    n = len(seeds)
    with atomic_path(seeds_md) as tmp:
        tmp.write_text(
            f"Replicates over {n} seeds ({', '.join(map(str, seeds))}): each seed reruns the whole workflow -- base model, "
            "evaluator, concept images, erasures, attacks and sampling -- so the spread is the spread between independent "
            "audits. Accuracy (%) per seed, then the mean and a 95 % interval for the mean (Student t over seeds); every "
            "cell with each seed's value is in seeds.csv.\n\n"
            + to_markdown(per_seed_table(df), checks)
            + f"\nEvery model, mean [95 % interval] over the {n} seeds:\n\n" + every_cell_markdown(cells))
    for seed, (passed, failed) in sorted(checks.items()):
        logger.info("seed %s: acceptance %d passed / %d failed", seed, passed, failed)
