import pandas as pd

from unerase.acceptance import main, run_checks


def _table(esd_inversion=0.8, tv_inversion=0.1, drop=None):
    rows = [("base", "name", 0.99), ("esd-x", "name", 0.02), ("esd-x", "control", 0.95), ("esd-x", "inversion", esd_inversion),
            ("tv", "control", 0.9), ("tv", "inversion", tv_inversion), ("tv", "name", 0.05)]
    return pd.DataFrame([dict(concept="zero", model=m, prompt_set=s, accuracy=a) for m, s, a in rows if (m, s) != drop])


def test_all_directions_pass():
    assert all(c.ok for c in run_checks(_table()))


def test_failed_recovery_and_failed_resistance_are_caught():
    failed = {c.what for c in run_checks(_table(esd_inversion=0.3, tv_inversion=0.6)) if not c.ok}
    assert failed == {"inversion recovers it from esd-x", "tv resists inversion"}


def test_missing_cell_fails(tmp_path):
    path = tmp_path / "t.csv"
    _table(drop=("esd-x", "inversion")).to_csv(path, index=False)
    assert main([str(path)]) == 1
    _table().to_csv(path, index=False)
    assert main([str(path)]) == 0
