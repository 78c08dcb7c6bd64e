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


def test_a_gap_of_exactly_the_bound_passes():
    # the helper's counter-example: 42/50/52 of 80 through ESD-x, 7/27/38 through TV (float32 in the CSV), a gap of
    # exactly 72/240 = 0.30, read back as 0.2999999846
    import numpy as np

    table = _table(esd_inversion=[float(np.float32(k / 80)) for k in (42, 50, 52)])
    for concept, k in zip(["zero", "three", "six"], (7, 27, 38)):
        table.loc[(table.concept == concept) & (table.model == "tv") & (table.prompt_set == "inversion"), "accuracy"] = float(np.float32(k / 80))
    gap = next(c for c in run_checks(table) if c.what.startswith("mean inversion accuracy"))
    assert gap.value < 0.30 and gap.ok
