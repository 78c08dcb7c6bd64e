"""The whole DAG on the tiny .test config, then what a config change re-runs (dry runs)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def smk(workdir, *args, check=True, env=None):
    proc = subprocess.run(SNAKEMAKE + ["--directory", str(workdir), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(proc) -> dict[str, int]:
    """Rule -> count from a dry run's 'Job stats' table."""
    lines = (proc.stdout + proc.stderr).splitlines()
    if any("Nothing to be done" in line for line in lines):
        return {}
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line) + 2
    jobs = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def generations(jobs: dict[str, int]) -> int:
    """Generation jobs of a plan, over the generate rules (one per group of models learning the same inline attacks)."""
    return sum(n for rule, n in jobs.items() if rule.startswith("generate"))


def overlay(workdir, name, change) -> str:
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    for dotted, value in change.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    out = Path(workdir) / name
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(out)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("run")
    shutil.copytree(ROOT / "config", wd / "config")
    shutil.copytree(ROOT / ".test", wd / ".test")
    smk(wd, "--cores", "2", "--configfile", ".test/config.yaml")
    return wd


@pytest.mark.slow
def test_whole_dag_writes_tables_and_logs(workdir):
    import torch

    from unerase.images_io import load_image_set

    table = pd.read_csv(workdir / "results/tables/accuracy.csv")
    cells = set(zip(table["model"], table["prompt_set"]))
    for model in ("base", "esd-x", "tv", "tv-es", "tv-pruned", "uce", "ac", "np", "sld-max", "irece", "esd-x+irece"):
        assert {(model, s) for s in ("name", "inversion", "transfer", "diverse-inversion", "ring-a-bell", "latent-inversion",
                                     "latent-transfer", "unlearn-diff", "control")} <= cells
    assert set(table.loc[table["prompt_set"] == "transfer", "access"]) == {"black-box"}
    assert set(table.loc[table["prompt_set"] == "inversion", "attack"]) == {"Concept Inversion"}
    latent = table["prompt_set"].str.startswith("latent-")
    assert table["accuracy"].between(0, 1).all() and (table.loc[~latent, "images"] == 10).all()
    assert (table.loc[latent, "images"] == 6).all()  # one regeneration per inverted concept image (latent_inversion.num_images)
    assert (table["evaluator"] == "embedded digit CNN").all()
    # every cell carries its evaluator's fingerprint and its count's 95 % Wilson interval
    assert {"hits", "ci95_low", "ci95_high", "evaluator_weights", "min_confidence", "evaluator_classes"} <= set(table.columns)
    assert table["evaluator_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert ((table["ci95_low"] <= table["accuracy"] + 1e-9) & (table["accuracy"] <= table["ci95_high"] + 1e-9)).all()
    # each paper layout's CSV: its cells as numbers with n and interval, the same numbers as accuracy.csv
    for layout, column in (("erasure_vs_inversion", "inversion"), ("attacks", "Ring-A-Bell (black-box)"),
                           ("modalities", "embedding · white-box: Concept Inversion"), ("quality", "control"), ("unlearn_diff", "post-attack")):
        cells = pd.read_csv(workdir / f"results/tables/{layout}.csv").set_index(["model", "concept"])
        assert set(cells["evaluator_sha256"]) == set(table["evaluator_sha256"])
        prompt_set = {"attacks": "ring-a-bell", "modalities": "inversion", "unlearn_diff": "unlearn-diff"}.get(layout, column)
        want = table[(table["model"] == "esd-x") & (table["prompt_set"] == prompt_set)].iloc[0]
        cell = cells.loc[("ESD-x", "zero")]
        assert cell[f"{column} (%)"] == pytest.approx(100 * want["accuracy"]) and cell[f"{column} n"] == want["images"]
        assert cell[f"{column} ci95 high (%)"] == pytest.approx(100 * want["ci95_high"])
    md = (workdir / "results/tables/erasure_vs_inversion.md").read_text()
    assert "| concept | base | base (inverted) | ESD-x | TV | TV-ES | TV-pruned | UCE | AC | NP | SLD-Max | IRECE | ESD-x+IRECE |" in md
    assert "| zero |" in md
    assert "| model | name | Concept Inversion (white-box) | Concept Inversion (transfer) (black-box) | Diverse Inversion (black-box) " \
           "| Ring-A-Bell (black-box) | DDIM latent inversion (white-box) | DDIM latent inversion (transfer) (black-box) " \
           "| UnlearnDiff (white-box) | control " \
           "| Erasure Score |" \
        in (workdir / "results/tables/attacks.md").read_text()
    # a guard is attacked with the embeddings of the weights it guards: the base model's, or ESD-x's in a stack
    attacked = {p.parent.parent.name for p in (workdir / "results/attacks/zero").glob("*/*/attack.json") if p.parent.name != "latent-inversion"}
    assert attacked == {"base", "esd-x", "tv", "tv-es", "tv-pruned", "uce", "ac", "sld-max"}  # through_sld: SLD's own inversion
    assert json.loads((workdir / "results/attacks/zero/sld-max/inversion/attack.json").read_text())["objective"]["kind"] == "sld-unrolled"
    # Concept Inversion's set on ac is drawn at its own guidance scale (.test: guidance_scale_by_method), the others at the sampler's
    assert load_image_set(workdir / "results/generations/zero/ac/inversion.safetensors")[2]["guidance_scale"] == 5.0
    assert load_image_set(workdir / "results/generations/zero/ac/name.safetensors")[2]["guidance_scale"] == 3.0
    assert load_image_set(workdir / "results/generations/zero/esd-x/inversion.safetensors")[2]["guidance_scale"] == 3.0
    scales = table.set_index(["model", "prompt_set"])["guidance_scale"]
    assert scales[("ac", "inversion")] == 5.0 and scales[("esd-x", "inversion")] == 3.0  # one concept in .test
    # UnlearnDiff (white-box prompts) is learned on each weight model, in its generation job; guards sample their weights' prompts
    unlearn_diff = {p.parent.name for p in (workdir / "results/attacks/zero").glob("*/unlearn-diff")}
    assert unlearn_diff == {"base", "esd-x", "tv", "tv-es", "tv-pruned", "uce", "ac"}
    prompts = json.loads((workdir / "results/attacks/zero/esd-x/unlearn-diff/prompts.json").read_text())["prompts"]
    assert len(prompts) == 2 and prompts[0].endswith(" a photo of the digit zero")
    # the black-box attacks are learned once, on the base; on the base, the transfer is the white-box inversion itself
    assert [p.parent.name for p in (workdir / "results/attacks/zero").glob("*/ring-a-bell")] == ["base"]
    assert [p.parent.name for p in (workdir / "results/attacks/zero").glob("*/diverse-inversion")] == ["base"]
    record = json.loads((workdir / "results/attacks/zero/base/diverse-inversion/attack.json").read_text())
    assert len(record["embeddings"]) == 3 and sum(record["histogram"]["similarity_to_concept"]) == 3
    es = pd.read_csv(workdir / "results/tables/erasure_score.csv")
    assert len(es) == 11 and es["erasure_score"].between(0, 1).all() and (es["erasure_score"] >= es["name_score"]).all()
    assert "Erasure Score" in (workdir / "results/tables/attacks.md").read_text()
    prompts = json.loads((workdir / "results/attacks/zero/base/ring-a-bell/prompts.json").read_text())["prompts"]
    assert len(prompts) == 2 and all("zero" not in p.split() for p in prompts)
    same, _, _ = load_image_set(workdir / "results/generations/zero/base/transfer.safetensors")
    assert torch.equal(same, load_image_set(workdir / "results/generations/zero/base/inversion.safetensors")[0])
    # latent inversion, learned in the generation job of each weight method and the base; a guard stack samples its
    # weights' seeds (the base's for a guard alone), so on a guard alone the white-box and transfer cells are one draw
    found = {p.parent.parent.name: p for p in (workdir / "results/attacks/zero").glob("*/latent-inversion/inverted_latents.safetensors")}
    assert sorted(found) == ["ac", "base", "esd-x", "tv", "tv-es", "tv-pruned", "uce"]
    assert torch.equal(load_image_set(workdir / "results/generations/zero/np/latent-transfer.safetensors")[0],
                       load_image_set(workdir / "results/generations/zero/np/latent-inversion.safetensors")[0])
    assert json.loads((found["esd-x"].parent / "attack.json").read_text())["learned_on"] == "esd-x"
    assert not (workdir / "results/benchmarks/attack/latent-inversion").exists()  # no job of its own
    assert not (workdir / "results/benchmarks/attack/inversion").exists()  # Concept Inversion neither (in the generation jobs)
    regenerated, _, meta = load_image_set(workdir / "results/generations/zero/esd-x/latent-inversion.safetensors")
    assert len(regenerated) == 6 and set(meta["prompts"]) == {""}
    assert torch.equal(load_image_set(workdir / "results/generations/zero/base/latent-transfer.safetensors")[0],
                       load_image_set(workdir / "results/generations/zero/base/latent-inversion.safetensors")[0])
    modalities = (workdir / "results/tables/modalities.md").read_text()
    assert ("| model | text · prompt: name | text · white-box: UnlearnDiff | text · black-box: Ring-A-Bell "
            "| embedding · white-box: Concept Inversion |") in modalities
    assert modalities.index("| ESD-x |") < modalities.index("| ESD-x+IRECE |") < modalities.index("| TV |")
    # memories: every audited model probed; a guard's seeds are its weights' (same NLLs), its reconstructions its own
    mem = json.loads((workdir / "results/probes/zero/memories.json").read_text())["models"]
    assert set(mem) == {"base", "esd-x", "tv", "tv-es", "tv-pruned", "uce", "ac", "np", "sld-max", "irece", "esd-x+irece"}
    assert mem["esd-x+irece"]["nll"] == mem["esd-x"]["nll"] and mem["np"]["nll"] == mem["base"]["nll"] != mem["esd-x"]["nll"]
    assert len(mem["esd-x"]["nll"]["concept"]) == 4 and mem["esd-x"]["many_seeds"]["images"] == 2
    assert "| ESD-x+IRECE |" in (workdir / "results/tables/memories.md").read_text()
    # the probes name the evaluator behind their concept decisions, as the metrics do
    evaluator = json.loads((workdir / "results/metrics/zero/base/name.json").read_text())["evaluator"]
    for probe in ("memories", "safety_grid"):
        assert json.loads((workdir / f"results/probes/zero/{probe}.json").read_text())["evaluator"]["sha256"] == evaluator["sha256"]
        assert f"sha256 {evaluator['sha256'][:12]}" in (workdir / f"results/tables/{probe}.md").read_text()
        assert set(pd.read_csv(workdir / f"results/tables/{probe}.csv")["evaluator_sha256"]) == {evaluator["sha256"]}
    assert (workdir / "results/figures/memories_nll_zero.png").read_bytes()[:4] == b"\x89PNG"
    assert not (workdir / "results/erased/zero/esd-x+irece").exists() and (workdir / "results/generations/zero/esd-x+irece/name.png").exists()
    # unconditional-safety grid: D_2 exhaustive (2^2 = 4 points), D_3 a recorded sample of 4 of its 9; the models of its config
    grid = json.loads((workdir / "results/probes/zero/safety_grid.json").read_text())
    assert sorted(grid["models"]) == ["base", "esd-x+irece", "tv"] and set(grid["models"]["tv"]) == {"2", "3"}
    assert grid["classes"]["2"] == dict(points=4, exhaustive=True, sample_seed=None) and grid["classes"]["3"]["points"] == 4
    assert grid["classes"]["3"]["sample_seed"] is not None and len(grid["points"]) == len(set(grid["members"]["2"] + grid["members"]["3"]))
    assert all(0 <= r["probability"] <= 1 for m in grid["models"].values() for r in m.values())
    grid_md = (workdir / "results/tables/safety_grid.md").read_text()
    assert "| model | D_2 (4 points) | D_3 (4 sampled) |" in grid_md and "| original |" in grid_md and "| TV |" in grid_md
    assert "| model | target class (%) | other classes (%) |" in grid_md
    assert (workdir / "results/figures/safety_grid.png").read_bytes()[:4] == b"\x89PNG"
    choice = json.loads((workdir / "results/erased/zero/tv/erasure.json").read_text())
    assert choice["alpha"] in (1.0, 2.0) and choice["rule"] == "largest" and choice["grid"] == [1.0, 2.0]
    assert [c["alpha"] for c in choice["candidates"]] in ([2.0], [1.0, 2.0])  # largest first, stop at the first passing
    by_es = json.loads((workdir / "results/erased/zero/tv-es/erasure.json").read_text())
    assert by_es["rule"] == "erasure-score" and [c["alpha"] for c in by_es["candidates"]] == [1.0, 2.0]  # every alpha scored
    assert all(0 <= c["erasure_score"] <= 1 for c in by_es["candidates"]) and by_es["alpha"] in (1.0, 2.0)
    assert (workdir / "results/figures/tv_es_alpha.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "results/figures/overview_zero.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "results/figures/diverse_inversion_zero.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "results/figures/crr_grid.png").read_bytes()[:4] == b"\x89PNG"
    pruned = json.loads((workdir / "results/erased/zero/tv-pruned/erasure.json").read_text())
    assert pruned["groups"] == ["up-attention"] and 0 < pruned["changed_tensors"] < json.loads(
        (workdir / "results/erased/zero/tv/erasure.json").read_text())["changed_tensors"]
    uce = json.loads((workdir / "results/erased/zero/uce/erasure.json").read_text())
    assert uce["method"] == "uce" and uce["settings"]["lam"] == 0.5 and uce["changed_tensors"] == uce["edited"] > 0
    # 12 generated concept images + the 3 user-supplied real ones
    images, labels, meta = load_image_set(workdir / "results/concept_images/zero/images.safetensors")
    assert images.shape == (15, 1, 16, 16) and set(labels.tolist()) == {0}
    log = (workdir / "results/logs/train_text_to_image/model.log").read_text()
    assert "step 30/30" in log and "ETA" in log and "loss" in log
    assert not list((workdir / "results").rglob("*.part"))  # no half-written files left behind


@pytest.mark.slow
def test_provenance_lists_every_weight_with_its_hash(workdir):
    from unerase.provenance import file_sha256

    record = json.loads((workdir / "results/provenance.json").read_text())
    hashed = {(workdir / f).resolve(): v["sha256"] for files in record["weights"].values() for f, v in files.items()}
    weights = [p for d in ("embedded/model", "evaluator", "erased", "finetuned", "attacks") for p in (workdir / "results" / d).rglob("*.safetensors")]
    assert len(weights) > 20  # base model, evaluator, 6 patches, fine-tune, each weight method's attacks
    for path in weights:
        assert hashed.get(path.resolve()) == file_sha256(path), path
    assert record["config"]["erasure"]["methods"] == yaml.safe_load((ROOT / ".test/config.yaml").read_text())["erasure"]["methods"]
    assert record["seeds"] == {"seed": 0}
    assert record["packages"]["torch"].startswith("2.14.1") and record["packages"]["snakemake"] == "9.27.1"
    assert len(record["git"]["commit"]) == 40  # the workflow's checkout (ROOT), not the working directory
    assert record["hardware"]["cpu_count"] >= 1 and "each job's log names the machine" in record["hardware_is"]
    erase_logs = list((workdir / "results/logs/erase").rglob("*.log"))
    assert erase_logs and all(" running on " in log.read_text().splitlines()[0] for log in erase_logs)
    # the scorers, from the metric files' fingerprints: the digit CNN scored every cell, with the classifier's own hash
    (digit_cnn,) = [s for s in record["scorers"] if s["role"] == "evaluator"]
    assert digit_cnn["sha256"] == file_sha256(workdir / "results/evaluator/classifier.safetensors")
    assert digit_cnn["cells"] == len(list((workdir / "results/metrics").rglob("*.json")))


@pytest.mark.slow
def test_efficiency_table_covers_every_method_and_attack(workdir):
    eff = pd.read_csv(workdir / "results/tables/efficiency.csv")
    assert set(eff.loc[eff["stage"] == "erasure", "name"]) == {"esd-x", "tv", "tv-es", "tv-pruned", "uce", "ac",
                                                                "fine-tune (shared by the task vectors)"}
    assert set(eff.loc[eff["stage"] == "attack", "name"]) == {"inversion (in the generation jobs)", "diverse-inversion", "ring-a-bell",
                                                               "latent-inversion (in the generation jobs)",
                                                               "unlearn-diff (in the generation jobs)"}
    ran = eff[eff["jobs"] > 0]
    assert (ran["wall_s"] > 0).all() and (ran["peak_mb"] > 100).all() and (eff["disk_mb"] > 0).all()
    inline = eff[eff["name"].str.endswith("(in the generation jobs)")]
    assert (inline["jobs"] == 0).all() and (inline["wall_s"] > 0).all()  # their seconds, from their records
    records = list((workdir / "results/attacks/zero").glob("*/inversion/attack.json"))
    assert sorted(r.parent.parent.name for r in records) == ["ac", "base", "esd-x", "sld-max", "tv", "tv-es", "tv-pruned", "uce"]
    for table in ("erasure_vs_inversion", "attacks", "modalities", "memories", "safety_grid", "efficiency", "unlearn_diff"):
        page = (workdir / f"results/report/{table}.html").read_text()
        assert "<table>" in page and "<td>" in page, table


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_report_opens_in_a_browser_with_its_tables_and_figures(workdir, tmp_path):
    report = tmp_path / "report.html"
    smk(workdir, "--configfile", ".test/config.yaml", "--report", str(report))
    raw = report.read_text()
    for path in ("results/report/efficiency.html", "results/report/erasure_vs_inversion.html", "results/figures/safety_grid.png",
                 "results/figures/tv_es_alpha.png", "results/figures/memories_nll_zero.png", "results/generations/zero/esd-x/inversion.png",
                 "results/figures/overview_zero.png", "results/figures/diverse_inversion_zero.png",
                 "results/figures/crr_grid.png", "results/tables/modalities.csv", "results/tables/erasure_vs_inversion.csv"):
        assert path in raw, path  # every table page, layout CSV and figure is embedded
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--dump-dom",
                          report.as_uri()], capture_output=True, text=True, timeout=180).stdout
    rendered = re.sub(r"<script.*?</script>", "", dom, flags=re.S)  # what the page's code drew, not the data it carries
    for category in ("Tables", "Probes", "Erasure", "Attacks", "Generations", "Concept images", "Overview"):
        assert category in rendered, category


@pytest.mark.slow
def test_unchanged_config_reruns_nothing(workdir):
    assert planned_jobs(smk(workdir, "-n", "--configfile", ".test/config.yaml")) == {}


@pytest.mark.slow
def test_metric_only_change_reruns_no_training(workdir):
    cfg = overlay(workdir, "metric.yaml", {"evaluation.min_confidence": 0.9})
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", cfg))
    # the safety grid scores its own images (it picks each class's best point by them)
    assert set(jobs) == {"evaluate", "tables", "safety_grid", "safety_grid_table", "safety_grid_figure", "report_page", "efficiency_table",
                         "provenance", "overview_figure", "diverse_inversion_figure", "crr_grid_figure", "all"}, jobs
    assert jobs["evaluate"] == 1  # one job scores all of the concept's cells
    # the Erasure Score's CLIP block is read only with score clip-similarity; switching to it re-runs the scoring and
    # tv-es (which picks alpha by it), nothing else upstream
    unused = overlay(workdir, "clip.yaml", {"evaluation.erasure_score.clip.model": "ViT-L-14", "evaluation.fid.weights": "x.pth"})
    assert set(planned_jobs(smk(workdir, "-n", "--configfile", unused))) <= {"provenance", "all"}  # provenance records the config
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "es-clip.yaml", {"evaluation.erasure_score.score": "clip-similarity"})))
    assert jobs["evaluate"] == 1 and jobs["erase"] == 1 and generations(jobs) == 1  # tv-es's search and its images
    assert not {"train_text_to_image", "finetune_on_concept", "attack_embeddings", "concept_images"} & set(jobs)


@pytest.mark.slow
def test_alpha_change_reruns_only_task_vector_jobs(workdir):
    cfg = overlay(workdir, "alpha.yaml", {"erasure.task_vector.alphas": [1.0, 1.5]})
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", cfg))
    assert jobs["erase"] == 3  # the alpha searches of tv, tv-es and tv-pruned (which shares tv's alpha settings), then their users
    assert not {"train_vae", "train_text_to_image", "train_classifier", "finetune_on_concept", "concept_images"} & set(jobs)
    rule = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "rule.yaml", {"erasure.task_vector.alpha_rule": "smallest"})))
    assert rule["erase"] == 2  # tv and tv-pruned; tv-es picks alpha by the Erasure Score and reads no alpha_rule
    es = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "es.yaml", {"erasure.tv_es.max_erasure_score": 0.3})))
    assert es["erase"] == 1 and generations(es) == 1  # tv-es alone


@pytest.mark.slow
def test_an_attack_change_reruns_only_that_attacks_jobs(workdir):
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "rab.yaml", {"attacks.ring_a_bell.eta": 5.0})))
    assert jobs.get("attack_prompts") == 1 and "attack_embeddings" not in jobs and "erase" not in jobs  # once per concept, on the base
    assert generations(jobs) == 11  # every audited model generates the new prompts
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "ci.yaml", {"attacks.concept_inversion.steps": 7})))
    # learned in the generation jobs of the base, the 6 weight methods and sld-max (through its guard); the other guards sample them
    assert generations(jobs) == 11 and not {"attack_embeddings", "attack_prompts", "erase"} & set(jobs)
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "sld.yaml", {"attacks.concept_inversion.sld_window": 50})))
    assert jobs.get("generate_guarded_inversion") == 1
    assert generations(jobs) == 1 and "attack_embeddings" not in jobs  # only sld-max's, whose job learns through its guard
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "cfg.yaml",
                                                                  {"attacks.concept_inversion.guidance_scale_by_method": {"ac": 6.0}})))
    assert generations(jobs) == 1 and "memories" not in jobs  # ac's generation job alone: the scale is read where the set is drawn
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "ud.yaml", {"attacks.unlearn_diff.steps_per_stage": 3})))
    assert generations(jobs) == 11 and not {"attack_embeddings", "attack_prompts", "erase"} & set(jobs)  # learned in generation
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "lat.yaml", {"attacks.latent_inversion.num_images": 5})))
    # learned in generation: no attack job; memories re-runs only because it reads the base model's (regenerated) control cell
    assert generations(jobs) == 11 and not {"attack_embeddings", "attack_prompts", "erase", "safety_grid"} & set(jobs)
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", overlay(workdir, "grid.yaml", {"probes.safety_grid.confirm_images": 3})))
    assert jobs.get("safety_grid") == 1 and not {"generate", "erase", "memories", "evaluate"} & set(jobs)


@pytest.mark.slow
def test_a_package_code_change_reruns_the_jobs_that_run_it(workdir, tmp_path):
    # The workflow run against a copy of the package (PYTHONPATH first): as if the package had been edited.
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {**os.environ, "PYTHONPATH": str(src)}
    esd = src / "unerase/erasure/esd.py"
    original = esd.read_text()
    assert planned_jobs(smk(workdir, "-n", "--configfile", ".test/config.yaml", env=env)) == {}
    # comments, docstrings and layout re-run nothing
    esd.write_text("# a comment\n" + original.replace('"""', '"""Edited docstring: ', 1).replace("\ndef ", "\n# why\n\n\ndef ") + "\n# end\n")
    assert planned_jobs(smk(workdir, "-n", "--configfile", ".test/config.yaml", env=env)) == {}
    # a code change to ESD re-runs ESD's erase job and what uses its model, not the base model, not other methods
    esd.write_text(original + "\nFIXED = True\n")
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", ".test/config.yaml", env=env))
    assert jobs["erase"] == 1 and generations(jobs) == 2, jobs  # esd-x; generations of esd-x and esd-x+irece
    assert not {"train_vae", "train_text_to_image", "train_classifier", "concept_images", "finetune_on_concept", "attack_prompts"} & set(jobs)
    # the tables' module re-runs the table jobs, nothing upstream of them
    esd.write_text(original)
    tables = src / "unerase/tables.py"
    tables.write_text(tables.read_text() + "\nFIXED = True\n")
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", ".test/config.yaml", env=env))
    assert "tables" in jobs and set(jobs) <= {"tables", "memories_table", "safety_grid_table", "report_page", "efficiency_table", "provenance",
                                              "crr_grid_figure", "all"}, jobs


def test_bad_config_key_is_named(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["erasure"]["esd"]["learning_rate"] = 1e-4
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0
    assert "learning_rate" in proc.stdout + proc.stderr


def test_unknown_concept_is_named(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["concepts"] = ["eleven"]
    cfg["real_images"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0 and "eleven" in proc.stdout + proc.stderr


def test_a_stack_that_is_not_a_model_is_named(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["erasure"]["methods"] = ["esd-x", "esd-x+xattn"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config key 'erasure.methods'" in out and "unknown erasure method 'xattn'" in out


@pytest.mark.parametrize("change, message", [
    ({"run": ["inversion", "ring-a-ding"]}, "config key 'attacks.run': unknown attack 'ring-a-ding'"),
    ({"diverse_inversion.bands": [[0.4, 0.2]]}, "config key 'attacks.diverse_inversion.bands': [0.4, 0.2]"),
    ({"concept_inversion.sld_unroll": 9, "concept_inversion.sld_window": 4}, "config key 'attacks.concept_inversion.sld_unroll' (9)"),
    # one UnlearnDiff prompt per template: more would run fewer prompts than its record says (sd14 had 5 for 3 templates)
    ({"unlearn_diff.num_prompts": 6}, "config key 'attacks.unlearn_diff.num_prompts' (6): one prompt per template"),
])
def test_a_bad_attack_setting_is_named(tmp_path, change, message):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    bad = overlay(tmp_path, "bad.yaml", {f"attacks.{k}": v for k, v in change.items()})
    proc = smk(tmp_path, "-n", "--configfile", bad, check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


@pytest.mark.parametrize("change, message", [
    ({"models": ["base", "ft-cond"]}, "config key 'probes.safety_grid.models': 'ft-cond' is not an audited model"),
    ({"dims": 10}, "config key 'probes.safety_grid.dims' (10): must be below the number of classes (10)"),
    ({"levels": [1, 3]}, "instance['probes']['safety_grid']['levels'][0]"),  # the schema: at least 2 values per axis
])
def test_a_bad_safety_grid_setting_is_named(tmp_path, change, message):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    bad = overlay(tmp_path, "bad.yaml", {f"probes.safety_grid.{k}": v for k, v in change.items()})
    proc = smk(tmp_path, "-n", "--configfile", bad, check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_sd14_plans_only_once_its_fid_reference_is_named(tmp_path):
    """config/sd14.yaml scores quality by Inception FID against real photographs nobody can ship: the plan stops at once
    with one line saying what to provide (not after the GPU hours before `evaluate`); named, the evaluate jobs plan."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    proc = smk(tmp_path, "-n", "--configfile", "config/sd14.yaml", check=False)
    assert proc.returncode != 0 and "config key 'evaluation.fid.reference' is not set" in proc.stdout + proc.stderr
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump({"evaluation": {"fid": {"reference": str(tmp_path / "coco30k.npz")}}}))
    proc = smk(tmp_path, "-n", "--configfile", "config/sd14.yaml", str(tmp_path / "reference.yaml"), check=False)
    assert proc.returncode != 0 and f"'evaluation.fid.reference': {tmp_path / 'coco30k.npz'} does not exist" in proc.stdout + proc.stderr
    (tmp_path / "coco30k.npz").write_bytes(b"")
    jobs = planned_jobs(smk(tmp_path, "-n", "--configfile", "config/sd14.yaml", str(tmp_path / "reference.yaml")))
    sd14 = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())
    assert jobs["evaluate"] == len(sd14["concepts"])
    assert "train_classifier" not in jobs  # the digit CNN scores nothing here (it was trained on every SD run)
    # the TV paper's control task: its six prompts on every audited model (the base and each method), one table
    assert sd14["evaluation"]["control_task"]["prompts"][:2] == ["art by Kilian Eng", "art by Picasso"]
    assert jobs["generate_control_task"] == len(sd14["concepts"]) * len(sd14["erasure"]["methods"])
    assert jobs["generate_control_task_base"] == 1  # the base draws the same images for every concept: once
    assert jobs["score_control_task"] == len(sd14["concepts"]) and jobs["control_task_table"] == 1
    # the digit CNN's FID features are no SD evaluator's: said at once
    (tmp_path / "features.yaml").write_text(yaml.safe_dump({"evaluation": {"fid": {"features": "evaluator"}}}))
    proc = smk(tmp_path, "-n", "--configfile", "config/sd14.yaml", str(tmp_path / "features.yaml"), check=False)
    assert proc.returncode != 0 and "'evaluation.fid.features': evaluator resnet50 has no reference set" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run(SNAKEMAKE + ["--lint", "--directory", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


DIFFUSION_RULES = {"train_vae", "train_text_to_image", "concept_images", "erase", "finetune_on_concept", "attack_embeddings",
                   "attack_prompts", "generate", "memories", "safety_grid"}


def slurm_dry_run(tmp_path, resources, configfiles=()):
    overlay_file = tmp_path / "gpu.yaml"
    overlay_file.write_text(yaml.safe_dump({"resources": resources}))
    # --forceall: plan every job whatever a `make run` in this checkout has already produced
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--forceall", "--configfile", *configfiles,
                           str(overlay_file)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        if (name := re.match(r"rule (\w+):", block)) and (line := re.search(r"resources: (.*)", block)):
            jobs.setdefault(name.group(1), set()).add(line.group(1))
    return jobs


def test_slurm_profile_requests_gpus_for_diffusion_jobs_only(tmp_path):
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())["resources"]
    jobs = slurm_dry_run(tmp_path, base | {"gpu": 2, "gpu_model": "h100", "mem_mb": 32000, "runtime": 240})
    assert DIFFUSION_RULES <= set(jobs)
    for rule, resources in jobs.items():
        for line in resources:
            diffusion = rule in DIFFUSION_RULES or rule.startswith("generate")
            assert ("gpu=2" in line and "gpu_model=h100" in line) == diffusion, (rule, line)
            if diffusion or rule == "train_classifier":
                assert "mem_mb=32000" in line and "runtime=240" in line, (rule, line)
    # the embedded default on a cluster without GPUs: no GPU request anywhere
    assert not any("gpu" in line for lines in slurm_dry_run(tmp_path, base).values() for line in lines)


def local_rules(*configfiles) -> dict[str, bool]:
    """Each rule of the workflow at ROOT under `configfiles`: whether it is a localrule (Snakemake's dry run does not say)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles]))._workflow
        return {rule.name: rule.name in workflow._localrules for rule in workflow.rules}


def test_with_sd14_the_scoring_jobs_are_compute_jobs_not_run_on_the_submitting_node(tmp_path):
    """On the digits default evaluate and score_control_task are localrules (seconds of work); with SD 1.4 they score
    thousands of 512-pixel images with ResNet-50, CLIP and Inception, so they are submitted, asking for no GPU (the
    evaluators run on the CPU); the tables stay local."""
    (tmp_path / "coco30k.npz").write_bytes(b"")
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"evaluation": {"fid": {"reference": str(tmp_path / "coco30k.npz")}}}))
    sd14 = local_rules(ROOT / "config/config.yaml", ROOT / "config/sd14.yaml", reference)
    default = local_rules(ROOT / "config/config.yaml")
    for rule in ("evaluate", "score_control_task"):
        assert default[rule] and not sd14[rule], rule
    assert sd14["tables"] and sd14["control_task_table"] and not sd14["generate"]
    resources = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())["resources"]
    jobs = slurm_dry_run(tmp_path, resources, configfiles=("config/sd14.yaml", str(reference)))
    assert all("gpu" not in line and "mem_mb=32000" in line for rule in ("evaluate", "score_control_task") for line in jobs[rule])
    assert all("gpu=1" in line for line in jobs["generate"])


def test_concept_listed_twice_is_refused(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["concepts"] = ["zero", "zero"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0 and "concepts" in proc.stdout + proc.stderr and "non-unique" in proc.stdout + proc.stderr


def test_a_misspelt_key_of_a_name_keyed_map_is_named(tmp_path):
    """Maps keyed by names the config chooses would ignore a misspelt key: AC's anchors (by class) and Concept Inversion's
    guidance scale by method (by weight method: a guard's cells take their weights' scale) stop the plan with the key named."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    for overlay, said in (({"erasure": {"ablating": {"anchors": {"zreo": "a photo of a digit"}}}},
                           "config key 'erasure.ablating.anchors.zreo': not one of the classes"),
                          ({"attacks": {"concept_inversion": {"guidance_scale_by_method": {"fnm": 6.0}}}},
                           "config key 'attacks.concept_inversion.guidance_scale_by_method.fnm': not a weight method"),
                          ({"attacks": {"concept_inversion": {"guidance_scale_by_method": {"sld-max": 6.0}}}},
                           "config key 'attacks.concept_inversion.guidance_scale_by_method.sld-max': not a weight method")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
        proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
        assert proc.returncode != 0 and said in proc.stdout + proc.stderr, said


def test_import_needs_a_path_per_concept_and_plans_its_audit(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["real_images"] = {}
    cfg["erasure"]["methods"] = ["esd-x", "import"]
    cfg["probes"]["safety_grid"]["models"] = ["base", "import"]
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "missing.yaml"), check=False)
    assert proc.returncode != 0 and "erasure.import.paths.zero" in proc.stdout + proc.stderr
    (tmp_path / "esd.safetensors").write_bytes(b"")  # only planned here; its contents are checked when the job runs
    cfg["erasure"]["import"]["paths"] = {"zero": str(tmp_path / "esd.safetensors")}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned_jobs(smk(tmp_path, "-n", "--configfile", str(tmp_path / "ok.yaml")))
    # esd-x and import; Concept Inversion in the generation jobs of base, esd-x and import; Diverse Inversion on the base
    assert jobs["erase"] == 2 and jobs["attack_embeddings"] == 1 and generations(jobs) == 3


def test_a_stack_audited_without_its_weights_learns_their_attacks_in_attack_jobs(tmp_path):
    # Concept Inversion and latent inversion are learned in the generation job of the model they are learned on;
    # esd-x+irece alone has no esd-x generation job, so attack jobs learn them on esd-x for it.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    cfg["real_images"] = {}
    cfg["erasure"]["methods"] = ["esd-x+irece"]
    cfg["probes"]["safety_grid"]["models"] = ["base"]
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "stack.yaml"))
    jobs = planned_jobs(proc)
    assert jobs["attack_embeddings_standalone"] == 1 and jobs["attack_latents_standalone"] == 1, jobs
    assert jobs["attack_prompts_standalone"] == 1, jobs  # UnlearnDiff
    assert jobs["generate"] == 1 and jobs["generate_guarded"] == 1  # the base learns its own; the stack samples esd-x's
    assert "results/attacks/zero/esd-x/inversion/learned_embeds.safetensors" in proc.stdout


@pytest.mark.slow
def test_the_control_task_runs_in_jobs_of_its_own(workdir, tiny_clip_dir):
    """Control prompts on the finished tiny run: the control task's jobs run (every audited model draws the prompts,
    CLIP scores them, one table), and tv-es's alpha search, which scores them at every alpha; changing the prompts
    re-runs those and nothing upstream."""
    name, weights = tiny_clip_dir
    clip = {"model": name, "pretrained": "random", "weights": str(weights), "template": "{}"}
    cfg = overlay(workdir, "control.yaml", {"evaluation.control_task.prompts": ["a photo of a cat", "the digit one"],
                                            "evaluation.erasure_score.clip": clip})
    audited = 1 + len(yaml.safe_load((ROOT / ".test/config.yaml").read_text())["erasure"]["methods"])
    upstream = {"train_vae", "train_text_to_image", "base_model", "train_classifier", "concept_images", "finetune_on_concept",
                "attack_embeddings"}
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", cfg))
    assert jobs.pop("generate_control_task") == audited - 1 and jobs.pop("generate_control_task_base") == 1, jobs
    assert jobs.pop("score_control_task") == 1, jobs
    # tv-es scores the prompts at every alpha (TV paper Fig. 4's control axis): its search and what reads its model re-run
    assert jobs.pop("erase") == 1 and not upstream & set(jobs), jobs
    smk(workdir, "--cores", "2", "--configfile", cfg)
    by_es = json.loads((workdir / "results/erased/zero/tv-es/erasure.json").read_text())
    assert by_es["control_task_prompts"] == ["a photo of a cat", "the digit one"] and by_es["min_control_similarity"] is None
    assert all(-1 <= c["control_similarity"] <= 1 for c in by_es["candidates"]) and len(by_es["candidates"]) > 1
    assert "control_similarity" not in json.dumps(json.loads((workdir / "results/erased/zero/tv/erasure.json").read_text()))
    df = pd.read_csv(workdir / "results/tables/control_task.csv")
    assert len(df) == audited * 3 and set(df["prompt"]) == {"all", "a photo of a cat", "the digit one"}
    assert df["mean_similarity"].between(-1, 1).all() and (df["ci95_low"] <= df["mean_similarity"]).all()
    assert (df.loc[df["prompt"] == "all", "images"] == 10).all()  # images_per_cell, the prompts in turn
    page = (workdir / "results/report/control_task.html").read_text()
    assert "Control task" in page and "a photo of a cat" in page
    # the erased models draw other images than the base from the same seeds
    base = load_file(workdir / "results/generations/control-task-base/control-prompts.safetensors")["images"]
    assert not (base == load_file(workdir / "results/generations/zero/esd-x/control-prompts.safetensors")["images"]).all()
    changed = overlay(workdir, "control2.yaml", {"evaluation.control_task.prompts": ["a photo of a dog"], "evaluation.erasure_score.clip": clip})
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", changed))
    assert jobs.pop("generate_control_task") == audited - 1 and jobs.pop("generate_control_task_base") == 1, jobs
    assert jobs.pop("erase") == 1 and not upstream & set(jobs), jobs


def planned_config(*configfiles, config=None) -> dict:
    """The config the workflow at ROOT plans with under `configfiles` and `--config` items `config`."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles],
                                                               config=config or {}))._workflow
        return workflow.globals["config"]


def test_sd14_provenance_reads_the_scorers_from_the_metrics_not_a_digit_classifier(tmp_path):
    """The digit CNN was trained on every SD 1.4 run and hashed in its provenance as "the evaluator", while ResNet-50,
    CLIP and Inception (found at run time) were not listed; now the provenance job reads every metric file instead."""
    (tmp_path / "coco30k.npz").write_bytes(b"")
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"evaluation": {"fid": {"reference": str(tmp_path / "coco30k.npz")}}}))
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                config_settings=ConfigSettings(configfiles=[ROOT / "config/sd14.yaml", reference]))._workflow
        rule = workflow.get_rule("provenance")
        named = dict(rule.input._names)
        assert "evaluator" not in named and "metrics" in named


def test_an_overriding_config_replaces_the_class_set_instead_of_joining_it(tmp_path):
    """Snakemake merges --configfile files key by key: sd14.yaml's ten ImageNet classes had joined config.yaml's ten
    digits, so every SD 1.4 run drew and scored "zero" ... "nine" as control classes (ImageNet labels 0-9). Mappings
    keyed by names are replaced whole by the last layer that gives them; parameter blocks still merge key by key."""
    (tmp_path / "coco30k.npz").write_bytes(b"")
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"evaluation": {"fid": {"reference": str(tmp_path / "coco30k.npz")}}}))
    sd14_file = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())
    for files in ((ROOT / "config/sd14.yaml", reference), (ROOT / "config/config.yaml", ROOT / "config/sd14.yaml", reference)):
        config = planned_config(*files)
        assert config["classes"] == sd14_file["classes"], files
        assert config["attacks"]["concept_inversion"]["guidance_scale_by_method"] == {"fmn": 15.0}
        assert config["erasure"]["esd"]["lr"] == sd14_file["erasure"]["esd"]["lr"]  # a parameter block: merged
        assert config["embedded"]["text_to_image"]["steps"] == 1500                  # from config.yaml, untouched
    # --config comes last: it replaces the set the files gave
    config = planned_config(ROOT / ".test/config.yaml", config={"classes": {"zero": 0, "one": 1, "two": 2}})
    assert config["classes"] == {"zero": 0, "one": 1, "two": 2}
    # without an override the defaults stand
    assert planned_config()["classes"] == yaml.safe_load((ROOT / "config/config.yaml").read_text())["classes"]


def rule_priorities_by_stage(*configfiles) -> dict[str, dict[str, int]]:
    """Each rule's scheduling priority, grouped by the stage its first output belongs to (the folder under results/)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles]))._workflow
        stages = {}
        for rule in workflow.rules:
            if rule.output:
                stages.setdefault(str(rule.output[0]).split("/")[1], {})[rule.name] = rule.priority
        return stages


def test_jobs_others_wait_on_are_scheduled_first():
    """Among ready jobs Snakemake runs the higher priority first: training (base model, concept images, fine-tune,
    attacks on the base, erasures) before generation, generation before the probes, the summaries last, so the DAG
    does not end with one concept's erase job, its generation and its probe running one after another on one core.
    A new training rule without a priority fails here (it would sit with the summaries)."""
    stages = rule_priorities_by_stage(ROOT / "config/config.yaml")
    order = [("embedded", "evaluator", "base_model"), ("concept_images",), ("finetuned", "attacks"), ("erased",),
             ("generations",), ("probes",)]
    ranked = [[p for stage in group for p in stages.pop(stage).values()] for group in order]
    ranked.append([p for rules in stages.values() for p in rules.values()])  # metrics, tables, figures, report
    for higher, lower in zip(ranked, ranked[1:]):
        assert min(higher) > max(lower), (ranked, higher, lower)


@pytest.mark.slow
def test_an_sd_shaped_run_gets_past_evaluate_with_evaluator_weights_the_test_wrote(sd_layout_dir, tmp_path):
    """config/sd14.yaml's own steps as Snakemake jobs on a random-weight model of SD 1.4's layout, scored by a ResNet-50
    weights file this test writes (ImageNet indices: sd14's Imagenette classes): base model, concept images, ESD-x,
    generation, evaluate and the tables, each a job of its own process, as a cluster runs them."""
    import hashlib

    import torch
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet50()
    with torch.no_grad():  # a head that says "church" (497) for every image: the concept cell scores 100 %, control 0 %
        resnet.fc.weight.zero_()
        resnet.fc.bias.zero_()
        resnet.fc.bias[497] = 10.0
    weights = tmp_path / "resnet50-random.pth"
    torch.save(resnet.state_dict(), weights)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    overlay = {"base_model": {"path": str(sd_layout_dir)}, "concepts": ["church"],
               "sampling": {"num_steps": 2, "batch_size": 4, "precision": "float32"}, "concept_images": {"count": 4},
               "erasure": {"methods": ["esd-x"], "esd": {"iterations": 2, "xt_source": "concept_images"}},
               "attacks": {"run": []}, "probes": {"run": []},
               "evaluation": {"images_per_cell": 4, "resnet50": {"tag": "IMAGENET1K_V1", "weights": str(weights)},
                              "erasure_score": {"score": "probability"}, "fid": {"features": "none"}, "control_task": {"prompts": []}}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(overlay))
    smk(tmp_path, "results/tables/accuracy.csv", "--cores", "2", "--configfile", str(tmp_path / "config/sd14.yaml"), str(tmp_path / "tiny.yaml"))
    table = pd.read_csv(tmp_path / "results/tables/accuracy.csv").set_index(["model", "prompt_set"])
    assert set(table.index) == {(m, s) for m in ("base", "esd-x") for s in ("name", "control")}
    assert (table["evaluator"] == "ResNet-50 ImageNet top-1").all() and (table["evaluator_weights"] == "torchvision IMAGENET1K_V1").all()
    assert set(table["evaluator_sha256"]) == {hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert (table.xs("name", level="prompt_set")["accuracy"] == 1.0).all() and (table.xs("control", level="prompt_set")["accuracy"] == 0).all()
    assert (table["images"] == 4).all()
    assert not (tmp_path / "results/evaluator").exists()  # no digit CNN trained on an SD run


def test_storage_temp_marks_the_fine_tunes_and_image_sets_it_names(tmp_path):
    """storage.temp: the listed kinds of bulky intermediate become temp() outputs (deleted once read); both configs keep
    everything (a deleted fine-tune re-made by a later TV-ES rerun would re-run every TV model's jobs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.io import is_flagged
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    (tmp_path / "coco30k.npz").write_bytes(b"")
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"evaluation": {"fid": {"reference": str(tmp_path / "coco30k.npz")}}}))
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"storage": {"temp": ["finetuned", "images"]}}))

    def flags(*configfiles):
        with SnakemakeApi() as api:
            workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                    config_settings=ConfigSettings(configfiles=list(configfiles)))._workflow
            finetuned = workflow.get_rule("finetune_on_concept").output[0]
            images = workflow.get_rule("generate").output[0]
            return is_flagged(finetuned, "temp"), is_flagged(images, "temp")

    assert flags(ROOT / "config/config.yaml") == (False, False)
    assert flags(ROOT / "config/sd14.yaml", reference) == (False, False)
    finetuned = tmp_path / "finetuned.yaml"
    finetuned.write_text(yaml.safe_dump({"storage": {"temp": ["finetuned"]}}))
    assert flags(ROOT / "config/sd14.yaml", reference, finetuned) == (True, False)
    assert flags(ROOT / "config/config.yaml", both) == (True, True)


def test_a_retried_job_asks_for_twice_the_memory_and_time():
    """The SLURM profile retries a failed job once (`retries: 1`); its second attempt asks for twice resources.mem_mb and
    resources.runtime (an out-of-memory kill or a time limit is what a retry is for)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    assert yaml.safe_load((ROOT / "slurm/config.yaml").read_text())["retries"] == 1
    sd14 = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())["resources"]
    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT,
                                config_settings=ConfigSettings(configfiles=[ROOT / "config/config.yaml"]))._workflow
        for name in ("erase", "generate", "evaluate"):
            resources = workflow.get_rule(name).resources
            for attempt in (1, 2):
                assert resources["mem_mb"].evaluate({}, attempt=attempt).value == 4000 * attempt, name
                assert resources["runtime"].evaluate({}, attempt=attempt).value == 60 * attempt, name
    assert sd14["mem_mb"] == 32000 and sd14["runtime"] == 240  # the same functions of sd14's numbers
