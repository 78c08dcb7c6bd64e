"""FID: the Fréchet distance against closed forms, and on the digits model in the digit CNN's features —
real digits are close to real digits of the same classes, noise and the wrong classes are not; the evaluate
step writes it for the control cell only."""
import json

import numpy as np
import pytest
import torch

from unerase.fid import fid, frechet_distance, statistics


def test_frechet_distance_matches_the_closed_forms():
    mu, eye = np.zeros(3), np.eye(3)
    assert frechet_distance(mu, eye, mu, eye) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(mu, eye, mu + [1, 2, 2], eye) == pytest.approx(9)
    # diagonal covariances: sum over dimensions of (sigma_a - sigma_b)^2
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert frechet_distance(mu, a, mu, b) == pytest.approx((1 - 2) ** 2 + 0 + (3 - 1) ** 2)
    # a full covariance against scipy's general matrix square root
    gen = np.random.default_rng(0)
    m_a, m_b = gen.normal(size=(4, 4)), gen.normal(size=(4, 4))
    s_a, s_b = m_a @ m_a.T, m_b @ m_b.T
    from scipy import linalg

    assert frechet_distance(mu, s_a[:3, :3], mu, s_b[:3, :3]) == pytest.approx(
        np.trace(s_a[:3, :3] + s_b[:3, :3] - 2 * linalg.sqrtm(s_a[:3, :3] @ s_b[:3, :3]).real))
    with pytest.raises(ValueError, match="at least two feature vectors"):
        statistics(np.zeros((1, 3)))


def test_fid_of_samples_sees_a_shift_and_survives_fewer_samples_than_dimensions():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4000, 8, generator=gen), torch.randn(4000, 8, generator=gen)
    assert fid(x, y) < 0.05
    assert fid(x, y + 1) == pytest.approx(8, rel=0.05)
    few = fid(torch.randn(20, 64, generator=gen), torch.randn(500, 64, generator=gen))  # singular covariance: finite
    assert np.isfinite(few) and few > 0


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from unerase.classifier import train_classifier

    path = tmp_path_factory.mktemp("fid") / "classifier.safetensors"
    train_classifier(str(path), steps=300, batch_size=64, lr=1e-3, test_fraction=0.2, seed=0)
    return path


def real_digits(classes, count, seed):
    from unerase.digits import load_digit_images

    x, y = load_digit_images()
    keep = torch.isin(y, torch.tensor(classes)).nonzero()[:, 0]
    pick = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:count]]
    return ((x[pick] + 1) * 127.5).round().to(torch.uint8), y[pick]


def test_digit_fid_is_low_for_real_digits_and_high_for_noise_or_other_classes(classifier):
    from unerase import evaluators

    scorer = evaluators.load("digit-cnn", {"min_confidence": 0.0}, str(classifier))
    others = [1, 2, 4, 5, 7, 8, 9]
    reference, described = scorer.reference_features(others)
    assert described == f"{len(reference)} scikit-learn digits of classes 1,2,4,5,7,8,9" and reference.shape[1] == 128
    images, _ = real_digits(others, 100, seed=1)
    real = fid(scorer.features(images), reference)
    noise = fid(scorer.features(torch.randint(0, 256, (100, 1, 16, 16), dtype=torch.uint8)), reference)
    zeros, _ = real_digits([0], 100, seed=1)
    wrong_class = fid(scorer.features(zeros), reference)
    assert noise > 3 * real and wrong_class > 3 * real


def test_evaluate_writes_fid_on_the_control_cell_only(classifier, tmp_path):
    from unerase.images_io import save_image_set
    from unerase.steps.evaluate import run

    control, control_labels = real_digits([1, 2, 4, 5, 7, 8, 9], 60, seed=2)
    name, _ = real_digits([3], 20, seed=2)
    paths = [tmp_path / "control.safetensors", tmp_path / "name.safetensors"]
    save_image_set(paths[0], control, control_labels.tolist(), ["a digit"] * 60)
    save_image_set(paths[1], name, [3] * 20, ["the digit three"] * 20)
    metrics = [tmp_path / "control.json", tmp_path / "name.json"]
    run(images=[str(p) for p in paths], metrics=[str(m) for m in metrics], evaluator="digit-cnn", settings={"min_confidence": 0.0},
        classifier=str(classifier), cells=[{"concept": "three", "model": "base", "prompt_set": s} for s in ("control", "name")])
    control_metrics, name_metrics = (json.loads(m.read_text()) for m in metrics)
    assert 0 < control_metrics["fid"] < 50
    assert control_metrics["fid_reference"].endswith("digits of classes 1,2,4,5,7,8,9")
    assert "fid" not in name_metrics
