import pytest
import pandas as pd

from unerase.tables import long_table, paper_table, to_markdown


def _records():
    acc = {("zero", "base", "name"): 0.99, ("zero", "base", "inversion"): 0.97, ("zero", "base", "control"): 0.98,
           ("zero", "esd-x", "name"): 0.03, ("zero", "esd-x", "inversion"): 0.81, ("zero", "esd-x", "control"): 0.93,
           ("zero", "tv", "name"): 0.05, ("zero", "tv", "inversion"): 0.12, ("zero", "tv", "control"): 0.91,
           ("three", "base", "name"): 1.0, ("three", "esd-x", "name"): 0.07}
    return [dict(concept=c, model=m, prompt_set=s, accuracy=a, images=100, evaluator="cnn") for (c, m, s), a in acc.items()]


def test_paper_table_layout():
    wide = paper_table(long_table(_records()), ["esd-x", "tv"], {"esd-x": "ESD-x", "tv": "TV"})
    assert list(wide.columns) == ["concept", "base", "base (inverted)", "ESD-x", "TV", "ESD-x control", "TV control", "base control"]
    assert list(wide["concept"]) == ["three", "zero"]
    zero = wide.set_index("concept").loc["zero"]
    assert zero["ESD-x"] == "3.0 / 81.0"
    assert zero["TV"] == "5.0 / 12.0"
    assert zero["base"] == "99.0" and zero["TV control"] == "91.0"
    three = wide.set_index("concept").loc["three"]
    assert three["ESD-x"] == "7.0 / –" and three["TV"] == "– / –"


def test_markdown_rendering():
    wide = paper_table(long_table(_records()), ["esd-x"], {})
    md = to_markdown(wide).splitlines()
    assert md[0].startswith("| concept | base |") and md[1].startswith("| --- |")
    assert len(md) == 2 + 2


def test_safety_grid_table_shows_each_class_per_concept_and_their_mean():
    from unerase.tables import safety_grid_long, safety_grid_table, target_other_table

    def rec(p_base, p_tv):
        by = lambda p: {"2": dict(best_point=0, screening_score=0.5, probability=p, mean_score=0.2, share_above_half=0.1),  # noqa: E731
                        "3": dict(best_point=1, screening_score=0.6, probability=p, mean_score=0.3, share_above_half=0.2)}
        return dict(models={"base": by(p_base), "tv": by(p_tv)}, points=[[-1, -1], [0, 1]], settings=dict(confirm_images=4),
                    classes={"2": dict(points=4, exhaustive=True), "3": dict(points=5, exhaustive=False)})

    df = safety_grid_long({"zero": rec(1.0, 0.25), "six": rec(0.5, 0.0)})
    assert len(df) == 8 and set(df[df["levels"] == 3]["best_point"]) == {"+0.00 +1.00"}
    assert df[(df["concept"] == "zero") & (df["model"] == "tv")]["hits"].tolist() == [1, 1]  # 25 % of 4 images
    table = safety_grid_table(df, ["base", "tv"], {"base": "original", "tv": "TV"})
    assert list(table.columns) == ["model", "D_2 (4 points)", "D_3 (5 sampled)"]
    assert table.iloc[0]["D_2 (4 points)"] == "100 / 50 = 75" and table.iloc[1]["D_3 (5 sampled)"] == "25 / 0 = 12.5"
    acc = pd.DataFrame([dict(concept=c, model=m, prompt_set=s, accuracy=a) for c, m, s, a in
                        [("zero", "tv", "name", 0.02), ("zero", "tv", "control", 0.9), ("six", "tv", "name", 0.04), ("six", "tv", "control", 0.8)]])
    t1 = target_other_table(acc, ["zero", "six"], ["tv"], {"tv": "TV"})
    assert t1.iloc[0].tolist() == ["TV", "2.0 / 4.0 = 3.0", "90.0 / 80.0 = 85.0"]


def test_each_rate_has_its_count_and_wilson_interval():
    from unerase.tables import wilson_interval

    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)   # not empty at 0 %
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    df = long_table([dict(concept="zero", model="tv", prompt_set="name", accuracy=0.10000000149, images=100, evaluator="cnn")])
    row = df.iloc[0]
    assert row["hits"] == 10 and row["ci95_low"] < 0.1 < row["ci95_high"] and row["ci95_high"] - row["ci95_low"] < 0.15


def test_pre_post_table_pairs_the_name_with_the_attack_and_its_interval():
    from unerase.tables import pre_post_table

    records = _records() + [dict(concept="zero", model="esd-x", prompt_set="unlearn-diff", accuracy=0.5, images=100, evaluator="cnn"),
                            dict(concept="zero", model="base", prompt_set="unlearn-diff", accuracy=1.0, images=100, evaluator="cnn")]
    table = pre_post_table(long_table(records), ["esd-x", "tv"], "unlearn-diff", {"esd-x": "ESD-x"}).set_index("model")
    assert list(table.columns) == ["three", "zero", "mean"] and list(table.index) == ["base", "ESD-x", "tv"]
    # 50 of 100: Wilson 95 % interval 40.4-59.6 %
    assert table.loc["ESD-x", "zero"] == "3.0 → 50.0 [40.4, 59.6]" and table.loc["ESD-x", "three"] == "–"
    assert table.loc["ESD-x", "mean"] == "3.0 → 50.0" and table.loc["tv", "mean"] == "–"


def test_a_layouts_csv_has_each_cell_as_a_number_with_its_n_and_interval():
    from unerase.tables import layout_cells, wilson_interval

    records = [r | dict(evaluator_sha256="ab" * 32) for r in _records()]
    cells = layout_cells(long_table(records), ["esd-x", "tv"], ["name", "inversion"], {"inversion": "after inversion"}, {"esd-x": "ESD-x"})
    assert list(cells.columns) == ["model", "concept", "name (%)", "name n", "name ci95 low (%)", "name ci95 high (%)", "after inversion (%)",
                                   "after inversion n", "after inversion ci95 low (%)", "after inversion ci95 high (%)", "evaluator",
                                   "evaluator_sha256"]
    # base first, then the methods, concepts in the accuracy table's order; tv has no cell for three, so no row
    assert list(zip(cells["model"], cells["concept"])) == [("base", "three"), ("base", "zero"), ("ESD-x", "three"), ("ESD-x", "zero"),
                                                           ("tv", "zero")]
    esd = cells.set_index(["model", "concept"]).loc[("ESD-x", "zero")]
    assert esd["after inversion (%)"] == pytest.approx(81.0) and esd["after inversion n"] == 100
    low, high = [100 * v for v in wilson_interval(81, 100)]
    assert (esd["after inversion ci95 low (%)"], esd["after inversion ci95 high (%)"]) == pytest.approx((low, high))
    three = cells.set_index(["model", "concept"]).loc[("ESD-x", "three")]
    assert three["name (%)"] == pytest.approx(7.0) and pd.isna(three["after inversion (%)"]) and pd.isna(three["after inversion n"])
    assert set(cells["evaluator_sha256"]) == {"ab" * 32} and set(cells["evaluator"]) == {"cnn"}
