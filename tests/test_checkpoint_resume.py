"""A killed training job resumes from its checkpoint and ends where an uninterrupted one would; training repeats itself."""
import pytest
import torch
from diffusers import AutoencoderKL

from unerase import embedded_model
from unerase import checkpoint
from unerase.checkpoint import Checkpointer

KW = dict(steps=12, batch_size=8, lr=2e-3, kl_weight=1e-4, seed=3, device=torch.device("cpu"), checkpoint_every=4)


class Killed(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    embedded_model.train_vae(str(tmp_path / "straight"), **KW)

    ckpt = tmp_path / "ckpt.pt"
    real_update = embedded_model.Progress.update

    def die_at_step_10(self, step, loss=None):
        if step == 9:
            raise Killed
        real_update(self, step, loss)

    monkeypatch.setattr(embedded_model.Progress, "update", die_at_step_10)
    with pytest.raises(Killed):
        embedded_model.train_vae(str(tmp_path / "resumed"), checkpoint=str(ckpt), **KW)
    assert ckpt.exists() and not (tmp_path / "resumed").exists()  # no half-written output
    assert torch.load(ckpt, weights_only=True)["step"] == 8
    monkeypatch.setattr(embedded_model.Progress, "update", real_update)

    embedded_model.train_vae(str(tmp_path / "resumed"), checkpoint=str(ckpt), **KW)
    assert not ckpt.exists()  # cleared once the output is written
    a = AutoencoderKL.from_pretrained(tmp_path / "straight").state_dict()
    b = AutoencoderKL.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_from_other_settings_is_ignored(tmp_path):
    path = tmp_path / "c.pt"
    Checkpointer(path, {"lr": 1}, every=1).maybe_save(0, 10, lambda: {"x": torch.zeros(1)})
    assert Checkpointer(path, {"lr": 1}, every=1).load()["step"] == 1
    assert Checkpointer(path, {"lr": 2}, every=1).load() is None


def test_caption_rng_survives_a_checkpoint():
    import random

    rng = random.Random(5)
    rng.random()
    state = checkpoint.pyrng_to_tensor(rng.getstate())
    assert state.dtype == torch.int64  # loadable with weights_only=True
    expected = [rng.random() for _ in range(3)]
    again = random.Random()
    again.setstate(checkpoint.pyrng_from_tensor(state))
    assert [again.random() for _ in range(3)] == expected


def test_the_base_model_trains_to_the_same_weights_on_two_threads(tmp_path):
    """Two threads made the text-to-image training drift run to run (kernels accumulating in thread order); it trains
    under PyTorch's deterministic kernels on the CPU, so two runs end bitwise equal — and the switch is put back."""
    from diffusers import UNet2DConditionModel

    embedded_model.train_vae(str(tmp_path / "vae"), **{**KW, "steps": 2, "checkpoint_every": 100})
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for run in ("a", "b"):
            embedded_model.train_text_to_image(str(tmp_path / "vae"), str(tmp_path / run), templates=["the digit {}", "{}"], steps=20,
                                               batch_size=32, lr_unet=1e-3, lr_text=5e-4, warmup=5, grad_clip=1.0, empty_caption_prob=0.1,
                                               seed=0, device=torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert not torch.are_deterministic_algorithms_enabled()
    from transformers import CLIPTextModel

    for part, cls in (("unet", UNet2DConditionModel), ("text_encoder", CLIPTextModel)):
        a, b = (cls.from_pretrained(tmp_path / run / part).state_dict() for run in ("a", "b"))
        assert all(torch.equal(a[k], b[k]) for k in a), part


def test_a_checkpoint_is_resumed_only_by_the_job_that_wrote_it(tmp_path):
    # A killed job's rerun resumes; a job Snakemake re-runs because an input or the code changed starts afresh
    # (the adapter tags every checkpoint of a job with its code fingerprint and its inputs' size and time).
    import os
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    from unerase.steps.snakemake_adapter import call

    images, path = tmp_path / "images.safetensors", tmp_path / "step.pt"
    images.write_bytes(b"v1")
    loaded = []

    def step(*, images, out, lr, threads, log):  # a resumable step: load, then save after its first step
        ck = Checkpointer(path, {"lr": lr}, every=1)
        loaded.append(ck.load() is not None)
        ck.maybe_save(0, 10, lambda: {"x": torch.zeros(1)})

    def job(code="c1"):
        return SimpleNamespace(input=Namedlist(fromdict={"images": str(images)}), output=Namedlist(fromdict={"out": str(tmp_path / "o")}),
                               params=Namedlist(fromdict={"lr": 1, "code": code}), threads=1, log=[], rule="r")

    try:
        call(step, job())          # first run: nothing to resume; writes its checkpoint, then is killed
        call(step, job())          # its rerun resumes
        assert loaded == [False, True]
        call(step, job("c2"))      # the package code changed
        images.write_bytes(b"v2 longer")
        os.utime(images, ns=(1, 1))
        call(step, job("c2"))      # an input was re-made
        call(step, job("c2"))      # ... and that job's own rerun resumes again
        assert loaded == [False, True, False, False, True]
    finally:
        checkpoint.JOB.clear()     # the tag is per process: leave none for the other tests
