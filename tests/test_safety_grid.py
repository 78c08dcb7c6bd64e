"""The unconditional-safety grid (unerase.safety_grid): its points, its subspace, its two-stage search."""
import itertools

import pytest
import torch

from unerase import safety_grid as grid


@pytest.mark.parametrize("dims,levels", [(1, 2), (2, 3), (4, 3), (3, 5)])
def test_an_exhaustive_class_enumerates_exactly_l_to_the_d_grid_points(dims, levels):
    points, exhaustive = grid.complexity_class(dims, levels, max_points=levels ** dims, seed=0)
    values = grid.grid_values(levels)
    assert exhaustive and points.shape == (levels ** dims, dims)
    assert {tuple(round(float(v), 6) for v in p) for p in points} == {tuple(round(v, 6) for v in c)
                                                                         for c in itertools.product(values, repeat=dims)}
    assert values[0] == -1 and values[-1] == 1 and len(set(values)) == levels


def test_a_large_class_is_a_seeded_sample_of_distinct_grid_points():
    a, exhaustive = grid.complexity_class(8, 6, max_points=300, seed=3)   # 6^8 = 1,679,616 points (the paper's D_6)
    b, _ = grid.complexity_class(8, 6, max_points=300, seed=3)
    c, _ = grid.complexity_class(8, 6, max_points=300, seed=4)
    assert not exhaustive and a.shape == (300, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(p.tolist()) for p in a}) == 300
    allowed = torch.tensor(grid.grid_values(6))
    assert torch.all((a[..., None] - allowed).abs().amin(-1) < 1e-6)


def test_points_shared_by_classes_are_drawn_once_and_count_in_each():
    classes = {L: grid.complexity_class(2, L, 100, 0)[0] for L in (2, 3)}
    points, members = grid.union_of(classes)
    assert len(points) == 9                          # D_2 = {-1, 1}^2 lies in D_3 = {-1, 0, 1}^2
    assert len(members[2]) == 4 and len(members[3]) == 9 and set(members[2]) <= set(members[3])
    for L, idx in members.items():
        assert torch.equal(points[torch.tensor(idx)], classes[L])


def test_the_box_spans_the_class_names_along_orthonormal_principal_axes():
    gen = torch.Generator().manual_seed(0)
    names = torch.randn(10, 32, generator=gen) * torch.linspace(3, 0.1, 32)
    mean, axes, radius = grid.subspace(names, 4)
    assert torch.allclose(axes @ axes.T, torch.eye(4), atol=1e-5)
    coords = ((names - mean) @ axes.T) / radius
    assert coords.abs().max() <= 1 + 1e-5 and torch.allclose(coords.abs().amax(0), torch.ones(4))
    assert torch.all(coords[coords.abs().argmax(0), torch.arange(4)] > 0)   # each axis signed towards its farthest class
    # a class's grid coordinates give back its embedding up to the part off the subspace
    back = grid.embeddings(coords, mean, axes, radius)
    residual = (names - mean) - ((names - mean) @ axes.T) @ axes
    assert torch.allclose(back + residual, names, atol=1e-4)
    with pytest.raises(ValueError, match="dims"):
        grid.subspace(names, 10)


def test_each_class_picks_its_best_screened_point():
    scores = torch.tensor([0.1, 0.9, 0.3, 0.9, 0.2])
    assert grid.best_per_class(scores, {2: [0, 2, 4], 3: [0, 1, 2, 3]}) == {2: 2, 3: 1}   # ties: the earlier point


def test_confirmation_seeds_never_repeat_a_screening_seed():
    screening = {s for p in range(1000) for s in grid.screening_seeds(7, p, 4)}
    assert len(screening) == 4000 and not screening & set(grid.confirmation_seeds(7, 16))


def _tokens(model, count):
    from unerase.inversion import add_tokens, placeholder_tokens

    add_tokens(model, "<g>", torch.zeros(count, model.text_encoder.get_input_embeddings().weight.shape[1]))
    return placeholder_tokens("<g>", count)


def test_each_image_is_drawn_from_its_own_embedding_whatever_the_batch(tiny_pipeline_dir):
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    tokens = _tokens(model, 2)
    vectors = torch.randn(3, model.text_encoder.get_input_embeddings().weight.shape[1], generator=torch.Generator().manual_seed(0))
    kw = dict(template="{}", guidance_scale=3.0, num_steps=3)
    together = grid.draw(model, tokens, vectors, [[5], [6], [7]], **kw)          # batches of 2 tokens: rows reused across batches
    alone = torch.cat([grid.draw(model, tokens[:1], vectors[i : i + 1], [[s]], **kw) for i, s in enumerate((5, 6, 7))])
    assert (together.int() - alone.int()).abs().max() <= 1
    swapped = grid.draw(model, tokens, vectors[[1, 0]], [[5], [5]], **kw)
    same_seed = grid.draw(model, tokens, vectors[:2], [[5], [5]], **kw)
    assert (swapped[0].int() - same_seed[1].int()).abs().max() <= 1 and not torch.equal(same_seed[0], same_seed[1])


def test_the_reported_probability_comes_from_fresh_images_of_the_best_point(tiny_pipeline_dir):
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    tokens = _tokens(model, 4)
    classes = {L: grid.complexity_class(2, L, 100, 0)[0] for L in (2, 3)}
    points, members = grid.union_of(classes)
    vectors = torch.randn(len(points), model.text_encoder.get_input_embeddings().weight.shape[1], generator=torch.Generator().manual_seed(1))
    calls = []

    def probability(x):  # a stand-in evaluator: the mean brightness
        calls.append(len(x))
        return x.float().mean((1, 2, 3)) / 255

    out = grid.probe_model(model, tokens, vectors, members, screening_images=2, confirm_images=3, seed=0,
                           concept_probability=probability, is_concept=lambda x: x.float().mean((1, 2, 3)) > -1, template="{}",
                           guidance_scale=3.0, num_steps=2)
    assert calls == [2 * len(points)] and set(out) == {"2", "3"}
    images = grid.draw(model, tokens, vectors, [grid.screening_seeds(0, p, 2) for p in range(len(points))], template="{}",
                       guidance_scale=3.0, num_steps=2)
    scores = probability(images).reshape(len(points), 2).mean(1)
    for L, idx in members.items():
        best = idx[int(torch.argmax(scores[torch.tensor(idx)]))]
        assert out[str(L)]["best_point"] == best and out[str(L)]["screening_score"] == pytest.approx(float(scores[best]), abs=1e-3)
        assert out[str(L)]["probability"] == 1.0


def test_the_grid_runs_on_the_sd_layout_with_a_guard(sd_layout_dir, tokenizer):
    from unerase.components import load_components

    model = load_components(str(sd_layout_dir))
    table = model.text_encoder.get_input_embeddings().weight.detach()
    names = grid.name_embeddings(model.tokenizer, table, ["tench", "church", "golf ball", "parachute"])
    mean, axes, radius = grid.subspace(names, 2)
    points, members = grid.union_of({2: grid.complexity_class(2, 2, 4, 0)[0]})
    tokens = _tokens(model, 4)
    out = grid.probe_model(model, tokens, grid.embeddings(points, mean, axes, radius), members, screening_images=1, confirm_images=2,
                           seed=0, concept_probability=lambda x: torch.rand(len(x), generator=torch.Generator().manual_seed(0)),
                           is_concept=lambda x: torch.zeros(len(x), dtype=torch.bool), template="a photo of a {}", guidance_scale=7.5,
                           num_steps=2, guard_options={"negative_prompt": "church"})
    assert out["2"]["probability"] == 0.0 and 0 <= out["2"]["best_point"] < 4
