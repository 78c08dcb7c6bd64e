import math

import pandas as pd
import pytest

from unerase.seed_summary import every_cell, every_cell_markdown, load_runs, mean_interval, per_seed_table, to_markdown, verdicts


def test_mean_interval_matches_the_t_formula():
    mean, lo, hi = mean_interval([10.0, 20.0, 30.0])
    # sd = 10, n = 3, t(0.975, 2) = 4.302653 -> half-width 24.84
    assert mean == 20.0 and hi - mean == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-6) and mean - lo == pytest.approx(hi - mean)
    single = mean_interval([42.0])
    assert single[0] == 42.0 and math.isnan(single[1]) and math.isnan(single[2])


def _run(tmp_path, seed, esd_inv, tv_inv):
    rows = []
    for concept in ("zero", "three", "six"):
        cells = [("base", "name", 0.99), ("esd-x", "name", 0.02), ("esd-x", "control", 0.95), ("esd-x", "inversion", esd_inv),
                 ("tv", "name", 0.05), ("tv", "control", 0.9), ("tv", "inversion", tv_inv)]
        rows += [dict(concept=concept, model=m, prompt_set=s, accuracy=a) for m, s, a in cells]
    path = tmp_path / f"seed-{seed}" / "results" / "tables" / "accuracy.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    choice = tmp_path / f"seed-{seed}" / "results" / "erased" / "zero" / "tv" / "erasure.json"
    choice.parent.mkdir(parents=True)
    choice.write_text('{"alpha": 1.75}')  # the other concepts have none: "nan"
    return str(path)


def test_per_seed_rows_summary_and_verdicts(tmp_path):
    paths = [_run(tmp_path, 0, 0.9, 0.1), _run(tmp_path, 1, 0.7, 0.1), _run(tmp_path, 2, 0.2, 0.5)]
    df = load_runs(paths)
    assert sorted(df["seed"].unique()) == ["0", "1", "2"]
    table = per_seed_table(df)
    zero = table[table["concept"] == "zero"]
    assert list(zero["seed"]) == ["0", "1", "2", "mean [95 % CI]"]
    assert list(zero["esd-x inversion"])[:3] == pytest.approx([90.0, 70.0, 20.0])
    assert zero["esd-x inversion"].iloc[3][0] == pytest.approx(60.0)
    assert list(zero["tv alpha"]) == ["1.75", "1.75", "1.75", ""] and table[table["concept"] == "six"]["tv alpha"].iloc[0] == "nan"
    checks = verdicts(df)
    assert checks["0"][1] == 0 and checks["1"][1] == 0 and checks["2"][1] > 0  # seed 2: no recovery, TV gives it back
    md = to_markdown(table, checks)
    assert "seeds passing every check: 2 of 3" in md and "| zero | mean [95 % CI] |" in md


def test_every_cell_gives_n_mean_interval_and_each_seed(tmp_path):
    paths = [_run(tmp_path, 3, 0.9, 0.1), _run(tmp_path, 7, 0.5, 0.3)]
    df = load_runs(paths, seeds=[5, 10])  # explicit seeds win over the path (seed-3, seed-7)
    cells = every_cell(df)
    inv = cells[(cells["concept"] == "three") & (cells["model"] == "esd-x") & (cells["prompt_set"] == "inversion")].iloc[0]
    assert inv["n"] == 2 and inv["seed 5"] == pytest.approx(90.0) and inv["seed 10"] == pytest.approx(50.0)
    assert "acceptance per seed: seed 5: " in to_markdown(per_seed_table(df), verdicts(df))  # 5 before 10, not as strings
    mean, lo, hi = mean_interval([90.0, 50.0])  # t(1) = 12.7: the raw interval leaves [0, 100] on both sides
    assert lo < 0 and hi > 100
    assert (inv["mean"], inv["ci_low"], inv["ci_high"]) == pytest.approx((70.0, 0.0, 100.0))  # seeds.csv keeps rates in range
    assert len(cells) == 3 * 7  # every (concept, model, prompt set) of the runs
    md = every_cell_markdown(cells)
    assert "| name (n = 2) | inversion (n = 2) | control (n = 2) |" in md
    assert "| three | esd-x | 2 [2, 2] | 70 [0, 100] | 95 [95, 95] |" in md  # equal seeds: a zero-width interval
    assert "| three | base | 99 [99, 99] | – | – |" in md  # a cell no run has


def test_a_cell_missing_from_one_run_counts_only_the_runs_that_have_it(tmp_path):
    full, partial = _run(tmp_path, 0, 0.9, 0.1), _run(tmp_path, 1, 0.7, 0.1)
    df = pd.read_csv(partial)
    df[~((df["model"] == "tv") & (df["prompt_set"] == "inversion"))].to_csv(partial, index=False)
    cells = every_cell(load_runs([full, partial], seeds=[0, 1]))
    tv_inv = cells[(cells["model"] == "tv") & (cells["prompt_set"] == "inversion")].iloc[0]
    assert tv_inv["n"] == 1 and tv_inv["mean"] == pytest.approx(10.0) and math.isnan(tv_inv["ci_low"])
    assert "| inversion (n = 1–2) |" in every_cell_markdown(cells)  # the header counts the seeds each column has
    with pytest.raises(ValueError, match="2 tables but 1 seeds"):
        load_runs([full, partial], seeds=[0])


def test_a_run_without_the_headline_models_still_summarises(tmp_path):
    # per_seed_table reports ESD-x and TV; a run auditing other methods gets "–" there, not a crash
    path = tmp_path / "seed-0" / "accuracy.csv"
    path.parent.mkdir()
    pd.DataFrame([dict(concept="zero", model=m, prompt_set=s, accuracy=a) for m, s, a in
                  [("base", "name", 0.99), ("uce", "name", 0.1), ("uce", "inversion", 0.8)]]).to_csv(path, index=False)
    df = load_runs([str(path)], seeds=[0])
    table = per_seed_table(df)
    assert math.isnan(table.iloc[1]["tv inversion"][0]) and "| zero | mean [95 % CI] | – |" in to_markdown(table, verdicts(df))
    assert every_cell(df)["mean"].tolist() == pytest.approx([99.0, 10.0, 80.0])


def test_every_cell_names_each_seeds_evaluator(tmp_path):
    """The digits model's replicates each train their own classifier: seeds.csv says which one scored each seed."""
    paths = [_run(tmp_path, 0, 0.9, 0.1), _run(tmp_path, 1, 0.5, 0.3)]
    for path, sha in zip(paths, ("a" * 64, "b" * 64)):
        pd.read_csv(path).assign(evaluator="embedded digit CNN", evaluator_sha256=sha).to_csv(path, index=False)
    cells = every_cell(load_runs(paths))
    assert set(cells["evaluators"]) == {f"0: embedded digit CNN {'a' * 64}; 1: embedded digit CNN {'b' * 64}"}
    assert "evaluators" not in every_cell(load_runs([_run(tmp_path, 2, 0.9, 0.1)]))  # tables written without fingerprints
