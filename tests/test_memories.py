"""Memories of forgotten concepts: the closed forms, the seed search, the probe on a tiny model."""
import math

import pytest
import torch

from unerase import memories


def test_nll_is_the_sum_of_the_standard_normal_log_density():
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    c = math.log(2 * math.pi)
    assert memories.gaussian_nll(z).tolist() == pytest.approx([c, 0.5 * (1 + 4) + c])
    normal = torch.randn(4000, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    d = 4 * 8 * 8  # E[NLL] = d/2 (1 + log 2π), sd = sqrt(d/2) for N(0, I) samples
    nll = memories.gaussian_nll(normal)
    assert float(nll.mean()) == pytest.approx(d / 2 * (1 + c), rel=2e-3) and float(nll.std()) == pytest.approx(math.sqrt(d / 2), rel=0.05)


def test_emd_is_the_squared_wasserstein_distance_of_fitted_gaussians():
    a, b = torch.tensor([1.0, 3.0]), torch.tensor([10.0, 14.0, 10.0, 14.0])  # N(2, 1) and N(12, 4)
    assert memories.fitted_emd(a, b) == pytest.approx((2 - 12) ** 2 + 1 + 4 - 2 * 1 * 2)
    assert memories.fitted_emd(b, b) == pytest.approx(0.0)
    d = memories.relative_distance(a, b, b)
    assert d["reference_normal"] == 0 and d["relative_distance"] == float("inf")
    d = memories.relative_distance(b, a + 1, a)
    assert d["relative_distance"] == pytest.approx(memories.fitted_emd(b, a) / memories.fitted_emd(a + 1, a))


def test_psnr_on_known_arrays():
    x = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    y = x.clone()
    y[0] = 255  # every pixel off by 1 on [0, 1]: 0 dB
    y[1, 0, 0, 0] = 51  # one pixel of 16 off by 0.2: mse 0.04 / 16
    out = memories.psnr(y, x)
    assert out[0].item() == pytest.approx(0.0) and out[1].item() == pytest.approx(10 * math.log10(16 / 0.04))
    assert memories.psnr(x, x)[0].item() == float("inf")


def test_distinct_seeds_need_to_reconstruct_and_to_be_apart():
    seeds = torch.tensor([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert memories.distinct_reconstructing(seeds, torch.tensor([True, True, True, False]), 0.1) == 2  # 2nd too close, 4th fails
    assert memories.distinct_reconstructing(seeds, torch.tensor([True] * 4), 0.0) == 4


def test_renoise_refines_the_inversion(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.sampling import ddim_invert, ddim_loop, initial_latents
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    ctx = encode(model.tokenizer, model.text_encoder, ["zero"] * 3)
    with torch.no_grad():
        z0 = ddim_loop(model.unet, model.scheduler, initial_latents(model.latent_shape, [1, 2, 3], "cpu"), ctx, ctx, 1.0, 10)[0]

    def error(renoise):
        seeds = ddim_invert(model, z0, ctx, 10, renoise)
        with torch.no_grad():
            back = ddim_loop(model.unet, model.scheduler, seeds, ctx, ctx, 1.0, 10)[0]
        return float((back - z0).pow(2).mean())

    assert error(3) < error(0)  # the fixed point of the forward step is closer than plain DDIM inversion


def test_renoise_regularisation_pulls_a_correlated_noise_towards_white_noise():
    """The reference's noise_regularization: its autocorrelation steps decorrelate a smooth noise; its KL steps move each
    patch's statistics towards the reference prediction's; a batch is regularised image by image, as the reference
    (batch 1) does, when the random shifts are the same."""
    import torch.nn.functional as F

    from unerase.renoise import REFERENCE, autocorrelation_loss, patch_kl, regularise_noise

    g = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.randn(3, 4, 8, 8, generator=g), scale_factor=4, mode="bilinear")  # (3, 4, 32, 32)
    white = torch.randn(3, 4, 32, 32, generator=g)
    assert autocorrelation_loss(smooth, torch.Generator().manual_seed(1)) > 10 * autocorrelation_loss(white, torch.Generator().manual_seed(1))
    ac_only = dict(REFERENCE, lambda_kl=0.0)
    after = regularise_noise(smooth, white, ac_only, torch.Generator().manual_seed(2))
    assert autocorrelation_loss(after, torch.Generator().manual_seed(3)) < 0.75 * autocorrelation_loss(smooth, torch.Generator().manual_seed(3))
    kl_only = dict(REFERENCE, lambda_ac=0.0)
    loud = 3 * white.flip(0)
    assert patch_kl(white, white) < 1e-2  # only the epsilon terms of 3 x 4 x 64 patch-channels
    assert patch_kl(regularise_noise(loud, white, kl_only, g), white) < 0.95 * patch_kl(loud, white)  # 4 small steps (lambda 0.065)
    together = regularise_noise(smooth, white, REFERENCE, torch.Generator().manual_seed(4))
    one_by_one = [regularise_noise(smooth[i:i + 1], white[i:i + 1], REFERENCE, torch.Generator().manual_seed(4)) for i in range(3)]
    assert torch.allclose(together, torch.cat(one_by_one), atol=1e-5)
    assert torch.equal(regularise_noise(smooth, white, dict(REFERENCE, steps=0), g), smooth)


def test_a_diverging_noise_regularisation_stops_with_one_line(tiny_pipeline_dir):
    """Regularisation steps too large for the model's noise predictions end in non-finite seeds (the reference's lambdas
    did so on the digits model): one line naming the setting, not a table of nan."""
    from unerase.components import load_components
    from unerase.renoise import REFERENCE
    from unerase.sampling import ddim_invert
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    ctx = encode(model.tokenizer, model.text_encoder, ["zero"] * 2)
    z0 = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(0)) * 0.1
    with pytest.raises(ValueError, match="noise regularisation .* diverged .* probes.memories.noise_regularisation to null"):
        ddim_invert(model, z0, ctx, 10, 2, regularisation=dict(REFERENCE, lambda_kl=1e6, lambda_ac=1e6), seed=0)
    assert torch.isfinite(ddim_invert(model, z0, ctx, 10, 2, seed=0)).all()  # the schedule alone


def test_renoise_step_follows_the_reference_schedule():
    """Below t = 250: iterates 0..4 averaged (at most 5 re-predictions) and the step re-taken from the average; above it:
    the last of n + 1 iterates. Without re-predictions or regularisation: one plain inverse step."""
    from unerase.renoise import inverse_step

    calls = []

    def predict(latent):  # the noise "predicted" at a latent: the latent itself plus one
        calls.append(float(latent))
        return latent + 1

    def step(noise):  # the step from x = 0 taken with `noise`
        return noise * 10

    x = torch.tensor(0.0)
    assert inverse_step(predict, step, x, 900, 0) == 10 and calls == [0.0]
    calls.clear()
    # above 250, 3 re-predictions: iterates at 0, 10, 110, 1110; the step is the last one's
    assert inverse_step(predict, step, x, 900, 3) == 11110 and calls == [0.0, 10.0, 110.0, 1110.0]
    calls.clear()
    # below 250, 7 asked: 5 re-predictions (6 iterates), the mean of iterates 0..4's noises (1, 11, 111, 1111, 11111) stepped
    assert inverse_step(predict, step, x, 101, 7) == pytest.approx(10 * (1 + 11 + 111 + 1111 + 11111) / 5)
    assert len(calls) == 6


def test_vae_latents_from_different_starts_fit_the_same_image(tiny_pipeline_dir):
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    channels, size = model.vae.config.in_channels, model.unet.config.sample_size * 2 ** (len(model.vae.config.block_out_channels) - 1)
    target = torch.randint(0, 256, (1, channels, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).repeat(2, 1, 1, 1)
    starts = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(1)) * 3

    def fit(steps):
        z = memories.optimise_vae_latents(model.vae, target, starts, steps, 5e-2)
        with torch.no_grad():
            decoded = model.vae.decode(z).sample / 2 + 0.5
        return z, float((decoded - target / 255).pow(2).mean())

    (z0, before), (z, after) = fit(0), fit(60)
    assert torch.equal(z0, starts) and after < before
    assert not torch.allclose(z[0], z[1])  # two starts, two latents for one image


def test_vae_latents_fitted_in_groups_equal_one_batch(tiny_pipeline_dir):
    # probes.memories.vae_batch_size: sd14's 5 x 10 images at 512 px cannot be decoded with gradients at once (278 GiB)
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    size = model.unet.config.sample_size * 2 ** (len(model.vae.config.block_out_channels) - 1)
    target = torch.randint(0, 256, (5, model.vae.config.in_channels, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    starts = torch.randn(5, *model.latent_shape, generator=torch.Generator().manual_seed(1))
    decoded = []
    original = model.vae.decode
    model.vae.decode = lambda z: decoded.append(len(z)) or original(z)
    whole = memories.optimise_vae_latents(model.vae, target, starts, 8, 5e-2)
    assert set(decoded) == {5}
    decoded.clear()
    grouped = memories.optimise_vae_latents(model.vae, target, starts, 8, 5e-2, batch_size=2)
    assert decoded == [2] * 8 + [2] * 8 + [1] * 8  # each group for every step, in order
    assert not torch.allclose(whole, starts, atol=1e-3)
    assert torch.allclose(grouped, whole, atol=1e-5), (grouped - whole).abs().max()
    assert torch.equal(memories.optimise_vae_latents(model.vae, target, starts, 8, 5e-2, batch_size=5), whole)  # one group: the same bits


def test_latent_bank_encodes_at_most_four_megapixels_at_a_time(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.diffusion import LatentBank, encode_batch

    assert encode_batch(torch.zeros(100, 3, 512, 512)) == 16      # SD 1.4: 100 images were one 40-50 GiB batch
    assert encode_batch(torch.zeros(1797, 1, 8, 8)) == 256        # the digits: the batches they always had
    assert encode_batch(torch.zeros(4, 3, 4096, 4096)) == 1
    model = load_components(str(tiny_pipeline_dir))
    images = torch.rand(7, model.vae.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sizes = []
    original = model.vae.encode
    model.vae.encode = lambda x: sizes.append(len(x)) or original(x)
    whole, split = LatentBank(model.vae, images, 1.0), LatentBank(model.vae, images, 1.0, batch_size=3)
    assert sizes == [7, 3, 3, 1]
    assert torch.allclose(whole.mean, split.mean, atol=1e-6) and torch.allclose(whole.std, split.std, atol=1e-6)


def test_probe_on_the_sd_layout_reports_every_quantity(sd_layout_dir):
    from unerase.components import load_components

    model = load_components(str(sd_layout_dir))
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 16, 16), generator=gen, dtype=torch.uint8)
    reference = torch.randint(0, 256, (3, 3, 16, 16), generator=gen, dtype=torch.uint8)
    settings = dict(renoise_steps=1, many_seeds_images=2, seeds_per_image=2, vae_steps=2, vae_lr=1e-2, vae_batch_size=3, psnr_threshold=0.0, min_distance=0.0)
    normal = memories.gaussian_nll(torch.randn(5, 4, 8, 8, generator=gen))
    inputs = memories.prepare(model, concept_images=images, concept_captions=["zero"] * 3, reference_images=reference,
                              reference_captions=["one", "two", "three"], normal_nll=normal, settings=settings)
    assert inputs.many_latents.shape == (4, 4, 8, 8) and torch.equal(inputs.many_targets[1], images[0])
    found = memories.model_seeds(model, inputs, settings, num_steps=3)
    out = memories.probe_model(model, inputs, found, settings, num_steps=3, batch_size=4, concept_score=lambda x: torch.ones(len(x), dtype=torch.bool),
                               guard_options={"irece": dict(concept="zero", tokens="zero", threshold=0.4, at=0.5)})
    assert len(out["nll"]["concept"]) == 3 and len(out["nll"]["normal"]) == 5 and len(out["psnr"]) == 3
    assert out["relative_distance"] == pytest.approx(out["concept_normal"] / out["reference_normal"])
    assert out["many_seeds"]["distinct"] == [2, 2] and out["concept_reconstructed"] == 1.0


class _Killed(Exception):
    pass


def test_a_killed_probe_resumes_without_fitting_or_probing_twice(sd_layout_dir, tmp_path, monkeypatch):
    # sd14's memories job runs for hours on an A100: a kill at the time limit must not cost the VAE fit or the models done
    import copy

    from unerase.components import load_components
    from unerase.steps._shared import audited_model

    base = load_components(str(sd_layout_dir))
    standard = copy.deepcopy(base.unet)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 16, 16), generator=gen, dtype=torch.uint8)
    reference = torch.randint(0, 256, (3, 3, 16, 16), generator=gen, dtype=torch.uint8)
    settings = dict(renoise_steps=1, many_seeds_images=2, seeds_per_image=2, vae_steps=3, vae_lr=1e-2, psnr_threshold=0.0, min_distance=0.0)
    normal = memories.gaussian_nll(torch.randn(5, 4, 8, 8, generator=gen))
    guards = [{}, {"irece": dict(concept="zero", tokens="zero", threshold=0.4, at=0.5)}, {}]
    fits, probed = [], []
    real_fit, real_probe = memories.optimise_vae_latents, memories.probe_model
    monkeypatch.setattr(memories, "optimise_vae_latents", lambda *a, **k: fits.append(1) or real_fit(*a, **k))

    def probe(*a, **k):
        if len(probed) == kill_at:
            raise _Killed
        probed.append(1)
        return real_probe(*a, **k)

    monkeypatch.setattr(memories, "probe_model", probe)

    def run(checkpoint=None):
        return memories.probe_models(
            lambda z: memories.prepare(base, concept_images=images, concept_captions=["zero"] * 3, reference_images=reference,
                                       reference_captions=["one", "two", "three"], normal_nll=normal, settings=settings, many_latents=z),
            lambda patch, options: audited_model(base, standard, patch, options), models=["base", "base+irece", "again"],
            patches=["", "", ""], guards=guards, settings=settings, num_steps=3, batch_size=4,
            concept_score=lambda x: torch.ones(len(x), dtype=torch.bool), seed=0, checkpoint=checkpoint, fingerprint={"run": 1})

    kill_at = None
    straight = run()
    assert (len(fits), len(probed)) == (1, 3)
    fits.clear(); probed.clear()
    ckpt = tmp_path / "memories.pt"
    kill_at = 2
    with pytest.raises(_Killed):
        run(str(ckpt))
    assert (len(fits), len(probed)) == (1, 2) and ckpt.exists()
    fits.clear(); probed.clear()
    kill_at = None
    resumed = run(str(ckpt))
    assert (len(fits), len(probed)) == (0, 1)  # the VAE fit and the two models done are read back, not redone
    assert not ckpt.exists()
    assert list(resumed) == ["base", "base+irece", "again"]
    assert resumed == straight


def test_a_reconstruction_shows_the_concept_where_the_evaluator_counts_a_hit():
    """ResNet-50's top-1 over 1,000 classes often has a probability far below 0.5: the probe read probability >= 0.5, a
    stricter criterion than every cell's accuracy; it now takes the evaluator's own hit."""
    from unerase.evaluators.base import Scores
    from unerase.steps.memories import recognises

    class TopOne:  # a planted evaluator: image i's probability and whether its top-1 class is the label
        def score(self, images, labels):
            probability = torch.tensor([0.3, 0.9, 0.6])
            return Scores(predicted=torch.tensor([497, 0, 497]), probability=probability, hit=torch.tensor([True, False, True]))

    assert recognises(TopOne(), 497)(torch.zeros(3, 3, 8, 8)).tolist() == [True, False, True]
