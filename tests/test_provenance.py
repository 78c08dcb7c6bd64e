"""The provenance manifest's parts: weight hashes, git state, versions, seeds."""
import hashlib
import subprocess

import pytest

from unerase import provenance


def test_hashes_cover_every_weight_file_of_a_folder(tmp_path):
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "unet/diffusion_pytorch_model.safetensors").write_bytes(b"unet weights")
    (model / "text_encoder.bin").write_bytes(b"text encoder")
    (model / "unet/config.json").write_text("{}")  # not a weight
    single = tmp_path / "classifier.safetensors"
    single.write_bytes(b"x" * (3 << 20))  # more than one read chunk
    found = provenance.hashes({"base": str(model), "evaluator": str(single)})
    assert sorted(found["base"]) == [str(model / "text_encoder.bin"), str(model / "unet/diffusion_pytorch_model.safetensors")]
    assert found["base"][str(model / "text_encoder.bin")] == dict(sha256=hashlib.sha256(b"text encoder").hexdigest(), bytes=12)
    assert found["evaluator"][str(single)]["sha256"] == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_scorers_are_read_from_the_metric_files_fingerprints():
    """An SD run's evaluators are found at run time (an explicit path or the standard cache): the manifest lists each
    once, with the sha256 its scoring jobs took of the file they loaded and the cells it scored."""
    resnet = dict(name="ResNet-50 ImageNet top-1", weights="/hub/resnet50-0676ba61.pth", weights_tag="torchvision IMAGENET1K_V1",
                  sha256="0676ba61" + "0" * 56, min_confidence=0.0)
    clip = dict(name="CLIP similarity ViT-B-32", weights="/hub/clip.bin", sha256="c" * 64)
    inception = dict(name="Inception-v3 pool3 (pytorch-fid 0.3.0)", weights="/hub/pt_inception.pth", sha256="1" * 64)
    records = [dict(evaluator=resnet, similarity_evaluator=clip, accuracy=0.1),
               dict(evaluator=resnet, similarity_evaluator=clip, fid_evaluator=inception, fid=12.0),
               dict(evaluator=resnet, accuracy=0.9)]
    found = provenance.scorers(records)
    assert [(s["role"], s["name"], s["cells"]) for s in found] == [
        ("evaluator", resnet["name"], 3), ("similarity_evaluator", clip["name"], 2), ("fid_evaluator", inception["name"], 1)]
    assert found[0]["sha256"] == resnet["sha256"] and found[0]["weights"] == resnet["weights"]
    other = dict(resnet, weights="/other/resnet50.pth", sha256="f" * 64)  # a second file is a second scorer
    assert len(provenance.scorers(records + [dict(evaluator=other)])) == 4


def test_a_missing_weight_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights file or model folder"):
        provenance.hashes({"evaluator": str(tmp_path / "gone.safetensors")})
    with pytest.raises(FileNotFoundError, match="set base_model.path to the folder the run used"):
        provenance.local_model_dir("nobody/no-such-model-here")


def test_git_state_of_a_checkout_and_of_a_plain_folder(tmp_path):
    assert provenance.git_state(tmp_path)["commit"] is None
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "Snakefile").write_text("rule all:\n")
    subprocess.run([*git, "add", "Snakefile"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    state = provenance.git_state(repo)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (repo / "Snakefile").write_text("rule all:\n    input: []\n")
    assert provenance.git_state(repo)["dirty"] is True


def test_seeds_and_versions():
    config = {"seed": 3, "attacks": {"ring_a_bell": {"init_seed": 2, "eta": 3.0}}, "flag_seed": True,
              "probes": {"memories": {"seeds_per_image": 4}}}
    assert provenance.seeds(config) == {"seed": 3, "attacks.ring_a_bell.init_seed": 2}
    versions = provenance.package_versions()
    assert versions["torch"].startswith("2.14.1") and versions["diffusers"] == "0.42.1" and versions["unerase"]


def test_every_job_log_names_the_machine_it_ran_on(tmp_path):
    """The manifest's `hardware` is the machine that wrote it (on a cluster, the submitting node); each job's log says
    where that job ran, on its first line."""
    import logging
    import platform

    from unerase.hardware import cpu_model
    from unerase.progress import setup_logging

    log = tmp_path / "job.log"
    setup_logging(str(log))
    logging.getLogger("unerase").info("step 1/1")
    for handler in logging.getLogger().handlers:
        handler.flush()
    first = log.read_text().splitlines()[0]
    assert f"running on {platform.node()}, {cpu_model()}" in first  # then ", CUDA <devices>" on a GPU machine
