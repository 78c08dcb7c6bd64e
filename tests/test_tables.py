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
