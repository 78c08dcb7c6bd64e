"""The efficiency table from planted benchmark files, and the report's table pages."""
import json

import pandas as pd
import pytest

from unerase.efficiency import efficiency_table, job_costs, readable
from unerase.report_pages import markdown_page

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def plant(root, relative, wall, cpu, rss):
    path = root / "benchmarks" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:{int(wall):02d}\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


@pytest.fixture()
def results(tmp_path):
    plant(tmp_path, "train_text_to_image/model.tsv", 30.0, 50.0, 1200.0)
    plant(tmp_path, "erase/zero/esd-x.tsv", 10.0, 8.0, 900.0)
    plant(tmp_path, "erase/six/esd-x.tsv", 12.0, 9.0, 950.0)
    plant(tmp_path, "erase/zero/receler.tsv", 99.0, 99.0, 9999.0)     # a method this run does not audit
    plant(tmp_path, "attack/inversion/zero/base.tsv", 20.0, 18.0, 1000.0)
    plant(tmp_path, "attack/inversion/zero/esd-x.tsv", 22.0, 19.0, 1010.0)
    plant(tmp_path, "attack/inversion/nine/base.tsv", 99.0, 99.0, 99.0)  # a concept this run does not audit
    plant(tmp_path, "generate/zero/esd-x.tsv", 5.0, 4.0, 800.0)
    plant(tmp_path, "generate_control_task/zero/esd-x.tsv", 3.0, 3.0, 700.0)
    plant(tmp_path, "generate_control_task/base.tsv", 4.0, 4.0, 700.0)  # the base's: one job for every concept
    (tmp_path / "generations/control-task-base").mkdir(parents=True)
    (tmp_path / "generations/control-task-base/control-prompts.safetensors").write_bytes(b"x" * 2**19)
    (tmp_path / "erased/zero/esd-x").mkdir(parents=True)
    (tmp_path / "erased/zero/esd-x/unet_patch.safetensors").write_bytes(b"x" * 2**20)
    (tmp_path / "attacks/zero/esd-x/latent-inversion").mkdir(parents=True)
    (tmp_path / "attacks/zero/esd-x/latent-inversion/inverted_latents.safetensors").write_bytes(b"x" * 2**19)
    # records of attacks learned in generation jobs (esd-x's, the base's), and of one an attack job learned (its benchmark above)
    for model, attack, seconds in (("esd-x", "latent-inversion", 1.5), ("base", "latent-inversion", 2.0), ("esd-x", "inversion", 21.0)):
        (tmp_path / f"attacks/zero/{model}/{attack}").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"attacks/zero/{model}/{attack}/attack.json").write_text(json.dumps({"attack": attack, "seconds": seconds}))
    # an earlier config's model, not audited by this run: its record and files are left out
    (tmp_path / "attacks/zero/uce/latent-inversion").mkdir(parents=True)
    (tmp_path / "attacks/zero/uce/latent-inversion/attack.json").write_text(json.dumps({"attack": "latent-inversion", "seconds": 30.0}))
    (tmp_path / "attacks/zero/uce/latent-inversion/inverted_latents.safetensors").write_bytes(b"x" * 2**20)
    return tmp_path


def test_jobs_are_summed_per_method_and_attack_and_other_configs_left_out(results):
    costs = job_costs(results / "benchmarks", ["esd-x"], ["inversion"], ["base", "esd-x"], ["zero", "six"])
    table = efficiency_table(costs, results, ["zero", "six"], inline_attacks=["latent-inversion", "inversion"],
                             models=["base", "esd-x"]).set_index("name")
    assert list(table["stage"].unique()) == ["base model", "erasure", "attack", "generation"]  # in pipeline order
    esd = table.loc["esd-x"]
    assert (esd["jobs"], esd["wall_s"], esd["cpu_s"], esd["peak_mb"]) == (2, 22.0, 17.0, 950.0)
    assert esd["wall_s_per_concept"] == 11.0 and esd["disk_mb"] == pytest.approx(1.0)
    inversion = table.loc["inversion"]
    assert (inversion["jobs"], inversion["wall_s"], inversion["peak_mb"]) == (2, 42.0, 1010.0)
    assert table.loc["train_text_to_image", "wall_s_per_concept"] == 30.0  # once per run, not per concept
    inline = table.loc["latent-inversion (in the generation jobs)"]
    assert inline["jobs"] == 0 and inline["wall_s"] == 3.5 and pd.isna(inline["cpu_s"]) and inline["disk_mb"] == pytest.approx(0.5, abs=0.01)
    assert table.loc["inversion (in the generation jobs)", "wall_s"] == 0.0  # esd-x's inversion had a job: counted there
    assert "receler" not in table.index
    control = table.loc["control task (fixed prompts of one model)"]
    assert (control["jobs"], control["wall_s"], control["wall_s_per_concept"]) == (2, 7.0, 3.5)
    assert control["disk_mb"] == pytest.approx(0.5, abs=0.01)
    shown = readable(table.reset_index())
    assert shown.loc[shown["name"] == "esd-x", "wall s"].item() == "22" and "–" in set(shown["CPU s"])


def test_table_pages_render_tables_and_escape_text():
    page = markdown_page("Cells are <b>rates</b>.\n\n| model | name |\n| --- | --- |\n| esd-x | 4 % |\n", "Erased & inverted")
    assert "<title>Erased &amp; inverted</title>" in page and "&lt;b&gt;rates&lt;/b&gt;" in page
    assert "<th>model</th>" in page and "<td>esd-x</td>" in page and "<td>4 %</td>" in page
