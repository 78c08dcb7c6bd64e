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
