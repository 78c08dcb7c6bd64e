"""The audit's overview figure: each cell's first images placed exactly, SD-size images shrunk, one panel per
(model, prompt set) with its accuracy."""
import numpy as np
import pytest
import torch
from PIL import Image

from unerase.figures import alpha_tradeoff, audit_overview, tile


def test_tile_places_each_image_with_one_pixel_gaps():
    x = torch.arange(4 * 1 * 3 * 3, dtype=torch.uint8).reshape(4, 1, 3, 3)
    t = tile(x)
    assert t.shape == (7, 7) and (t[3, :] == 255).all() and (t[:, 3] == 255).all()
    for i, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        assert np.array_equal(t[r:r + 3, c:c + 3], x[i, 0].numpy())


def test_tile_shrinks_sd_size_images_and_keeps_colour():
    x = torch.zeros(3, 3, 512, 512, dtype=torch.uint8)
    x[:, 0] = 200  # red
    t = tile(x, max_side=64)
    assert t.shape == (129, 129, 3)
    assert (t[:64, :64, 0] == 200).all() and (t[:64, :64, 1:] == 0).all()
    assert (t[65:, 65:] == 255).all()  # the fourth slot is empty


def test_the_alpha_figure_gains_the_control_task_panel_when_the_search_scored_its_prompts(tmp_path):
    def record(similarities):
        candidates = [dict(alpha=a, erasure_score=0.5 / a, control=1.0 - 0.1 * a, **({"control_similarity": s} if s else {}))
                      for a, s in zip((1.0, 1.5, 2.0), similarities)]
        return dict(alpha=1.5, candidates=candidates, max_erasure_score=0.24, min_control_accuracy=0.8, min_control_similarity=None,
                    erasure_score_by="clip-similarity")

    widths = {}
    for name, records in {"classes": {"church": record([None] * 3)},
                          # garbage_truck: every control prompt named it, so its search scored none
                          "prompts": {"church": record([0.31, 0.30, 0.27]), "garbage_truck": record([None] * 3)}}.items():
        path = tmp_path / f"{name}.png"
        alpha_tradeoff(records, str(path))
        with Image.open(path) as image:
            widths[name] = image.size[0]
    assert widths["prompts"] == pytest.approx(1.5 * widths["classes"], rel=0.02)  # three panels instead of two


def test_the_overview_has_a_panel_per_cell(tmp_path):
    torch.manual_seed(0)
    cells = {(m, s): (torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8), 0.25) for m in ("base", "esd-x") for s in ("name", "control")}
    del cells[("esd-x", "control")]  # a missing cell leaves its panel blank
    path = tmp_path / "overview.png"
    audit_overview(str(path), "zero", cells, ["base", "esd-x"], ["name", "control"], {"esd-x": "ESD-x"}, {"name": "name"})
    with Image.open(path) as image:
        width, height = image.size
    assert width > 200 and height > 200


def test_the_overview_step_pairs_each_cells_first_images_with_its_accuracy(tmp_path, monkeypatch):
    import json

    import unerase.figures
    from unerase.images_io import save_image_set
    from unerase.steps.audit_figures import overview

    cells, images, metrics = [], [], []
    for i, (model, prompt_set) in enumerate([("base", "name"), ("base", "control"), ("uce", "name"), ("uce", "control")]):
        x = torch.full((6, 1, 8, 8), i, dtype=torch.uint8)
        x[4:] = 99  # past the first four: not drawn
        images.append(str(tmp_path / f"{i}.safetensors"))
        save_image_set(images[-1], x, [0] * 6, ["zero"] * 6)
        metrics.append(str(tmp_path / f"{i}.json"))
        (tmp_path / f"{i}.json").write_text(json.dumps({"accuracy": i / 10}))
        cells.append({"model": model, "prompt_set": prompt_set})
    seen = {}
    monkeypatch.setattr(unerase.figures, "audit_overview", lambda path, concept, drawn, models, sets, *labels: seen.update(
        drawn=drawn, models=models, sets=sets))
    overview(images=images, metrics=metrics, figure=str(tmp_path / "o.png"), concept="zero", cells=cells, model_labels={}, set_labels={})
    assert seen["models"] == ["base", "uce"] and seen["sets"] == ["name", "control"]
    for i, cell in enumerate(cells):
        x, accuracy = seen["drawn"][(cell["model"], cell["prompt_set"])]
        assert accuracy == i / 10 and x.shape[0] == 4 and (x == i).all()


def test_the_diverse_inversion_figure_matches_each_token_to_its_embedding(tmp_path, monkeypatch):
    import json

    import unerase.figures
    from unerase.steps.audit_figures import diverse_inversion

    record = tmp_path / "attack.json"
    record.write_text(json.dumps({"embeddings": [{"index": 0, "similarity_to_concept": 0.1, "kept": True},
                                                 {"index": 3, "similarity_to_concept": 0.5, "kept": True},
                                                 {"index": 4, "similarity_to_concept": 0.9, "kept": False}]}))
    metrics = []
    for model, scores in (("base", (0.9, 0.8)), ("uce", (0.2, 0.7))):
        metrics.append(tmp_path / f"{model}.json")
        metrics[-1].write_text(json.dumps({"label_probability_by_token": {"<zero-diverse-inversion>_000": scores[0],
                                                                          "<zero-diverse-inversion>_003": scores[1]}}))
    seen = {}
    monkeypatch.setattr(unerase.figures, "diverse_inversion_figure", lambda path, concept, embeddings, scores, labels, score: seen.update(
        scores=scores, embeddings=embeddings, score=score))
    diverse_inversion(record=str(record), metrics=[str(m) for m in metrics], figure=str(tmp_path / "f.png"), concept="zero",
                      models=["base", "uce"], model_labels={})
    assert seen["scores"] == {"base": {0: 0.9, 3: 0.8}, "uce": {0: 0.2, 3: 0.7}} and len(seen["embeddings"]) == 3
    # the Erasure Score by CLIP similarity (config/sd14.yaml): the figure plots what the score read, not the probability
    for model, path in zip(("base", "uce"), metrics):
        cell = json.loads(path.read_text())
        path.write_text(json.dumps({**cell, "clip_similarity_by_token": {"<zero-diverse-inversion>_003": 0.31 if model == "base" else 0.22}}))
    diverse_inversion(record=str(record), metrics=[str(m) for m in metrics], figure=str(tmp_path / "f.png"), concept="zero",
                      models=["base", "uce"], model_labels={}, erasure_score_by="clip-similarity")
    assert seen["scores"] == {"base": {3: 0.31}, "uce": {3: 0.22}} and seen["score"] == "clip-similarity"
    monkeypatch.undo()
    for score in ("probability", "clip-similarity"):
        unerase.figures.diverse_inversion_figure(str(tmp_path / "f.png"), "zero", seen["embeddings"], seen["scores"], {}, score=score)
        with Image.open(tmp_path / "f.png") as image:
            assert image.size[0] > image.size[1] > 200


def test_the_crr_grid_is_the_mean_over_concepts_in_m_erasurebench_order(tmp_path, monkeypatch):
    import pandas as pd

    import unerase.figures
    from unerase.steps.crr_grid import crr_grid

    rows = [("zero", "base", "name", 1.0), ("one", "base", "name", 0.8), ("zero", "esd-x", "name", 0.0), ("one", "esd-x", "name", 0.2),
            ("zero", "esd-x", "ring-a-bell", 0.5), ("zero", "esd-x", "inversion", 0.25), ("zero", "esd-x+irece", "inversion", 0.1)]
    pd.DataFrame(rows, columns=["concept", "model", "prompt_set", "accuracy"]).to_csv(tmp_path / "accuracy.csv", index=False)
    seen = {}
    monkeypatch.setattr(unerase.figures, "crr_heatmap", lambda path, rates, r, c, title: seen.update(rates=rates, rows=r, columns=c))
    attacks = {"inversion": {"label": "CI", "access": "white-box", "modality": "embedding"},
               "ring-a-bell": {"label": "RaB", "access": "black-box", "modality": "text"}}
    crr_grid(long_csv=str(tmp_path / "accuracy.csv"), figure=str(tmp_path / "f.png"), methods=["esd-x+irece", "esd-x"],
             method_labels={"esd-x": "ESD-x"}, attacks=attacks)
    assert seen["rows"] == ["base", "esd-x+irece", "ESD-x"]
    assert seen["columns"] == ["text · prompt: name", "text · black-box: RaB", "embedding · white-box: CI"]
    expected = np.array([[0.9, np.nan, np.nan], [np.nan, np.nan, 0.1], [0.1, 0.5, 0.25]])
    assert np.allclose(seen["rates"], expected, equal_nan=True)
