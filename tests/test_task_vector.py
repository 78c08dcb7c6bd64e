import pytest
import torch

from unerase.steps.select_alpha import choose_alpha
from unerase.task_vector import negate, task_vector


def test_task_vector_and_negation_are_exact():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g), "steps": torch.tensor([7])}
    ft = {"w": base["w"] + 0.5, "b": base["b"] - 0.25, "steps": torch.tensor([9])}
    tau = task_vector(base, ft)
    assert set(tau) == {"w", "b"}  # integer buffers are not part of τ
    torch.testing.assert_close(tau["w"], torch.full((4, 3), 0.5), rtol=0, atol=1e-6)
    erased = negate(base, tau, 1.5)
    torch.testing.assert_close(erased["w"], base["w"] - 0.75, rtol=0, atol=1e-6)
    torch.testing.assert_close(erased["b"], base["b"] + 0.375, rtol=0, atol=1e-6)
    # α = -1 is the fine-tuned model itself
    torch.testing.assert_close(negate(base, tau, -1.0)["w"], ft["w"], rtol=0, atol=1e-6)


def test_task_vector_rejects_mismatched_models():
    with pytest.raises(ValueError):
        task_vector({"a": torch.zeros(1)}, {"b": torch.zeros(1)})


def test_choose_alpha_smallest_meeting_criteria():
    rows = [dict(alpha=1.0, target=0.30, control=0.95), dict(alpha=1.25, target=0.08, control=0.90),
            dict(alpha=1.5, target=0.02, control=0.85), dict(alpha=2.0, target=0.0, control=0.50)]
    assert choose_alpha(rows, 0.10, 0.80)[0] == 1.25
    # nothing meets both: lowest concept accuracy among those keeping control
    assert choose_alpha(rows, 0.01, 0.80)[0] == 1.5
    # nothing keeps control: lowest concept accuracy overall
    assert choose_alpha(rows, 0.01, 0.99)[0] == 2.0
    # exactly at the bound (10 of 100 as float32) meets it
    edge = [dict(alpha=1.0, target=0.10000000149011612, control=0.8), dict(alpha=2.0, target=0.0, control=0.9)]
    assert choose_alpha(edge, 0.10, 0.80) == (1.0, "smallest alpha meeting both criteria")
