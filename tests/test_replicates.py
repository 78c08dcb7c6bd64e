"""Replicates over seeds (config key `seeds`, rules/replicates.smk): every listed seed besides `seed` reruns the whole
workflow under replicates/seed-N/, and results/tables/seeds.* put the seeds' cells side by side."""
import hashlib
import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from test_workflow import planned_jobs, smk
from unerase.seed_summary import mean_interval


def _write_config(workdir, name, **changes):
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    # One weight method per kind the acceptance check reads and one attack: the replicate machinery, not every method.
    cfg["erasure"]["methods"] = ["esd-x", "tv"]
    cfg["attacks"]["run"] = ["inversion"]
    cfg["probes"]["run"] = []
    cfg.update(changes)
    (workdir / name).write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(workdir / name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("replicates")
    shutil.copytree(ROOT / "config", wd / "config")
    shutil.copytree(ROOT / ".test", wd / ".test")
    smk(wd, "--cores", "2", "--configfile", _write_config(wd, "seeds.yaml", seeds=[0, 1]))
    return wd


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_each_seed_is_an_independent_run_in_its_own_folder(workdir):
    main, replicate = workdir / "results", workdir / "replicates/seed-1/results"
    unet = "embedded/model/unet/diffusion_pytorch_model.safetensors"
    assert _sha(main / unet) != _sha(replicate / unet)  # its own base model
    assert json.loads((main / "evaluator/classifier.json").read_text())["seed"] == 0
    assert json.loads((replicate / "evaluator/classifier.json").read_text())["seed"] == 1
    for run in (main, replicate):
        for name in ("accuracy.csv", "erasure_vs_inversion.md", "attacks.md"):
            assert (run / "tables" / name).is_file()
    # Params are not moved by Snakemake's module prefix: the replicate's resumable jobs checkpoint inside its folder.
    log = (replicate / "logs/train_text_to_image/model.log").read_text()
    assert "replicates/seed-1/results/checkpoints/train_text_to_image/model.pt" in log
    assert "at results/checkpoints/" in (main / "logs/train_text_to_image/model.log").read_text()
    assert not (workdir / "replicates/seed-0").exists()  # the main run is seed 0's replicate


@pytest.mark.slow
def test_the_seed_summary_is_each_seeds_cells_with_mean_and_interval(workdir):
    runs = {s: pd.read_csv(workdir / d / "results/tables/accuracy.csv").set_index(["concept", "model", "prompt_set"])["accuracy"]
            for s, d in ((0, "."), (1, "replicates/seed-1"))}
    cells = pd.read_csv(workdir / "results/tables/seeds.csv")
    assert len(cells) == len(runs[0]) and (cells["n"] == 2).all()
    for row in cells.to_dict("records"):
        key = (row["concept"], row["model"], row["prompt_set"])
        values = [100 * runs[0][key], 100 * runs[1][key]]
        assert [row["seed 0"], row["seed 1"]] == pytest.approx(values)
        mean, low, high = mean_interval(values)
        low, high = max(low, 0.0), min(high, 100.0)  # a rate's interval stays in [0, 100]
        assert [row["mean"], row["ci_low"], row["ci_high"]] == pytest.approx([mean, low, high], nan_ok=True)
    md = (workdir / "results/tables/seeds.md").read_text()
    assert "acceptance per seed: seed 0: " in md and ", seed 1: " in md and "| zero | mean [95 % CI] |" in md
    assert "<table>" in (workdir / "results/report/seeds.html").read_text()


@pytest.mark.slow
def test_the_report_puts_a_replicate_in_sections_of_its_own(workdir, tmp_path):
    report = tmp_path / "report.html"
    smk(workdir, "--configfile", str(workdir / "seeds.yaml"), "--report", str(report))
    raw = report.read_text()
    assert '"Generations, seed 1"' in raw and '"Generations"' in raw
    assert "replicates/seed-1/results/generations/zero/esd-x/inversion.png" in raw


@pytest.mark.slow
def test_seeds_from_the_command_line_plan_nothing_new_and_dropping_them_keeps_the_main_run(workdir):
    assert planned_jobs(smk(workdir, "-n", "--configfile", str(workdir / "seeds.yaml"), "--config", "seeds=[0,1]")) == {}
    # Without replicates only the provenance manifest (it records the config) is rewritten.
    assert planned_jobs(smk(workdir, "-n", "--configfile", _write_config(workdir, "one.yaml", seeds=[]))) == {"provenance": 1, "all": 1}
    # One more seed plans that replicate's jobs and the summary, nothing of the others.
    jobs = planned_jobs(smk(workdir, "-n", "--configfile", _write_config(workdir, "three.yaml", seeds=[0, 1, 2])))
    assert jobs["seed2_train_text_to_image"] == 1 and not any(r.startswith("seed1_") for r in jobs)
    assert {r for r in jobs if not r.startswith("seed2_")} == {"seed_summary", "report_page", "provenance", "all"}


@pytest.mark.parametrize("seeds, message", [([0, 0], "config key 'seeds': a seed is listed twice"),
                                            ([-1], "-1 is not valid under any of the given schemas")])
def test_a_bad_seeds_list_is_named(tmp_path, seeds, message):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    proc = smk(tmp_path, "-n", "--configfile", _write_config(tmp_path, "bad.yaml", seeds=seeds), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_a_replicates_cheap_rules_stay_local_on_a_cluster():
    # `localrules:` lists rule names as written, so a module's copies (seed1_tables) would be submitted to SLURM;
    # each rule's own `localrule: True` travels with `use rule`.
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(config={"seeds": [0, 1]}),
                                snakefile=ROOT / "Snakefile", workdir=ROOT)._workflow
        local = {rule.name: rule.name in workflow._localrules for rule in workflow.rules}
    for name in ("tables", "evaluate", "provenance", "overview_figure", "report_page", "efficiency_table"):
        assert local[name] and local[f"seed1_{name}"], name
    assert local["seed_summary"]
    assert not local["generate"] and not local["seed1_generate"] and not local["seed1_train_text_to_image"]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def test_no_replicate_job_reads_the_main_runs_files_through_its_params(tmp_path):
    # Snakemake's module prefix moves a replicate's inputs, outputs, logs and benchmarks, not its params: every param
    # naming a workflow file (checkpoints, attack artefacts, the probes' UNet patches) must carry the replicate's folder.
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, ResourceSettings

    shutil.copytree(ROOT / "config", tmp_path / "config")
    with SnakemakeApi() as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(config={"seeds": [0, 1]}),
                          snakefile=ROOT / "Snakefile", workdir=tmp_path)
        # the replicate's every output, its probes and figures included (its provenance needs them all)
        wf.dag(DAGSettings(forceall=True, targets={"all", "replicates/seed-1/results/provenance.json",
                                                   "replicates/seed-1/results/tables/efficiency.md"}))
        workflow = wf._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        jobs = [job for job in workflow.dag.jobs if job.rule.name.startswith("seed1_")]
        wrong = {(job.rule.name, key, s) for job in jobs for key, value in job.params.items() for s in _strings(value)
                 if "results/" in s and not s.startswith("replicates/seed-1/results/")}
    rules = {job.rule.name for job in jobs}
    assert {"seed1_memories", "seed1_safety_grid", "seed1_generate", "seed1_erase", "seed1_train_text_to_image"} <= rules
    assert not wrong, sorted(wrong)[:10]


def test_a_users_file_is_the_same_file_for_every_replicate(tmp_path):
    # The module prefix would move a relative input (an FID reference, Q16's prompts, an imported UNet) into
    # replicates/seed-N/; user_file() marks them local, so each replicate scores against the one file named.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "reference.npz").write_bytes(b"")
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["seeds"] = [0, 1]
    cfg["evaluation"]["fid"] = {"features": "inception", "weights": None, "reference": "reference.npz"}
    (tmp_path / "fid.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = smk(tmp_path, "-n", "--configfile", str(tmp_path / "fid.yaml"), check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert planned_jobs(proc)["seed1_evaluate"] == 3 and "replicates/seed-1/reference.npz" not in proc.stdout + proc.stderr


def test_replicates_draw_disjoint_noise_and_seed_0_draws_what_it_always_did():
    """With `seed + i` replicate 1's images 0..98 reused replicate 0's noises 1..99 (on SD 1.4 every replicate shares the
    base model, so its cells were nearly the same images). Each run seed now owns a block of derived seeds."""
    from unerase.safety_grid import confirmation_seeds, screening_seeds
    from unerase.seeding import SEED_BLOCK, derived, image_seeds

    assert image_seeds(0, 100) == list(range(100)) and derived(0, 1) == 1  # the default run is unchanged
    assert confirmation_seeds(0, 16) == [1_000_000 + j for j in range(16)] and screening_seeds(0, 3, 4) == [12, 13, 14, 15]
    drawn = [set(image_seeds(s, 1000)) | set(confirmation_seeds(s, 16)) | {derived(s, 1)} for s in range(5)]
    assert all(not (drawn[a] & drawn[b]) for a in range(5) for b in range(a + 1, 5))
    with pytest.raises(ValueError, match="outside"):
        derived(1, SEED_BLOCK)
