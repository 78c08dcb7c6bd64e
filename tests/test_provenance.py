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
