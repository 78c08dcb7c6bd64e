import pandas as pd

from unerase.acceptance import main, run_checks


def _table(esd_inversion=(0.8, 0.9, 0.3), tv_inversion=0.1, drop=None):
    rows = []
    for concept, esd_inv in zip(["zero", "three", "six"], esd_inversion):
        cells = [("base", "name", 0.99), ("esd-x", "name", 0.02), ("esd-x", "control", 0.95), ("esd-x", "inversion", esd_inv),
                 ("tv", "control", 0.9), ("tv", "inversion", tv_inversion), ("tv", "name", 0.05)]
        rows += [dict(concept=concept, model=m, prompt_set=s, accuracy=a) for m, s, a in cells if (concept, m, s) != drop]
    return pd.DataFrame(rows)


def test_all_directions_pass():
    assert all(c.ok for c in run_checks(_table()))


def test_failed_recovery_and_failed_resistance_are_caught():
    failed = {c.what for c in run_checks(_table(esd_inversion=(0.6, 0.3, 0.3), tv_inversion=0.4)) if not c.ok}
    assert failed == {"tv resists inversion", "share of concepts inversion brings back from esd-x to >= 50%",
                      "mean inversion accuracy, esd-x minus tv"}


def test_exactly_at_threshold_passes():
    # 10 of 100 images is 0.1 stored as float32 (0.10000000149): still "<= 10 %"
    table = _table()
    table.loc[(table.model == "esd-x") & (table.prompt_set == "name"), "accuracy"] = 0.10000000149011612
    assert all(c.ok for c in run_checks(table))


def test_missing_cell_fails(tmp_path):
    path = tmp_path / "t.csv"
    _table(drop=("six", "esd-x", "inversion")).to_csv(path, index=False)
    assert main([str(path)]) == 1
    _table().to_csv(path, index=False)
    assert main([str(path)]) == 0
