"""The erasure registry: every registered method has its code, its config block and its schema entry;
UCE's closed form is the least-squares solution of its objective; each method runs on the SD layout."""
import json

import pytest
import torch
import yaml

from conftest import ROOT
from unerase import erasure
from unerase.erasure import guard_options
from unerase.erasure.uce import uce_weight


def test_registry_schema_and_config_agree():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["erasure"]
    full = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config = full["erasure"]
    import re

    from unerase.erasure.training import PARAMETER_GROUPS

    groups = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["definitions"]["parameter_group"]["enum"]
    assert tuple(groups) == PARAMETER_GROUPS
    pattern = re.compile(schema["properties"]["methods"]["items"]["pattern"])
    assert all(pattern.match(name) for name in erasure.METHODS) and pattern.match("esd-x+irece") and not pattern.match("esd x")
    for name, spec in erasure.METHODS.items():
        assert spec.config in schema["properties"] and spec.config in config, name
        if spec.is_guard:  # a guard changes the sampler, not the weights
            assert guard_options.sampling_options(name, config[spec.config], "zero"), name
        else:
            assert callable(erasure.implementation(name).erase), name
        assert set(spec.needs) <= {"concept_images", "finetuned", "evaluator", "imported", "diverse_inversion"}, name
        assert "{}" not in spec.name and "+" not in spec.name, name  # "+" joins stacks  # what rules/common.smk provides
        for dotted in spec.uses:  # every declared key exists, so the rule's params resolve
            node = full
            for key in dotted.split("."):
                node = node[key]
    with pytest.raises(ValueError, match="unknown erasure method 'esd-xattn'"):
        erasure.get("esd-xattn")  # the reference README's name that silently trained nothing


def test_uce_is_the_least_squares_solution_of_its_objective():
    g = torch.Generator().manual_seed(0)
    d_in, d_out = 6, 4
    w = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    ec, pc = torch.randn(3, d_in, generator=g, dtype=torch.float64), torch.randn(5, d_in, generator=g, dtype=torch.float64)
    ev = torch.randn(3, d_out, generator=g, dtype=torch.float64)
    lam, se, sp = 0.5, 1.0, 2.0
    got = uce_weight(w, ec, ev, pc, pc @ w.T, lam, se, sp)
    # min λ‖W'−W‖² + s_e Σ‖W'c−v*‖² + s_p Σ‖W'c_p − W c_p‖²  as one stacked least-squares problem in W'ᵀ
    a = torch.cat([lam**0.5 * torch.eye(d_in, dtype=torch.float64), se**0.5 * ec, sp**0.5 * pc])
    b = torch.cat([lam**0.5 * w.T, se**0.5 * ev, sp**0.5 * (pc @ w.T)])
    want = torch.linalg.lstsq(a, b).solution.T
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    # the edit does what it is for: with a small λ the concept maps (almost) onto v*, preserved rows stay
    sharp = uce_weight(w, ec[:1], ev[:1], pc[:2], pc[:2] @ w.T, 1e-6, 1.0, 1.0)
    torch.testing.assert_close(sharp @ ec[0], ev[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(sharp @ pc[1], w @ pc[1], rtol=0, atol=1e-4)


def _erase(pipe_dir, tmp_path, method, settings, shared=None, **inputs):
    from unerase.steps import base_model, erase

    manifest = tmp_path / "manifest.json"
    base_model.run(manifest=str(manifest), source="pretrained", path=str(pipe_dir))
    classes = {"zero": 0, "one": 1, "two": 2}
    erase.run(manifest=str(manifest), patch=str(tmp_path / f"{method}.safetensors"), record=str(tmp_path / f"{method}.json"),
              method=method, settings=settings, shared=shared or {}, concept_text="zero", label=0, classes=classes,
              templates=["a photo of the digit {}", "{}"], seed=0, checkpoint=None, **inputs)
    from safetensors.torch import load_file

    return load_file(str(tmp_path / f"{method}.safetensors")), json.loads((tmp_path / f"{method}.json").read_text())


@pytest.mark.parametrize("layout,tokens", [("embedded", "last_to_end"), ("embedded", "last"), ("sd", "last_to_end")])
def test_uce_edits_exactly_the_cross_attention_keys_and_values(layout, tokens, tiny_pipeline_dir, sd_layout_dir, tmp_path):
    from unerase.components import load_components

    pipe = tiny_pipeline_dir if layout == "embedded" else sd_layout_dir
    settings = dict(guide="", tokens=tokens, preserve="others", lam=0.5, erase_scale=1.0, preserve_scale=1.0)
    patch, record = _erase(pipe, tmp_path, "uce", settings)
    assert patch and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in patch)
    assert record["changed_tensors"] == len(patch) and record["preserve_prompts"] == 4 and record["erase_prompts"] == 2
    # "a photo of the digit zero" ends at position 6 and "zero" at 1, the guide "" at 0 (start token): 71 + 76 rows
    # from the last word on, 77 per preserved prompt; one row per prompt for "last"
    assert (record["erased_rows"], record["preserved_rows"]) == ((71 + 76, 4 * 77) if tokens == "last_to_end" else (2, 4))
    base = dict(load_components(str(pipe)).unet.named_parameters())
    assert all(not torch.equal(v, base[k]) for k, v in patch.items())


def test_uce_without_a_preserve_scale_is_train_erase_py_s_default(tiny_pipeline_dir, tmp_path, monkeypatch):
    """preserve_scale null: the empty prompt joins the preserved ones (retain_texts = [''] + preserve_concepts) at
    max(0.1, 1 / len(retain_texts)): 1/5 for four preserved prompts, 0.1 from nine on."""
    from unerase.erasure import uce

    scales = []
    real = uce.uce_weight
    monkeypatch.setattr(uce, "uce_weight", lambda *a: scales.append(a[-1]) or real(*a))
    settings = dict(guide="", tokens="last_to_end", preserve="others", lam=0.5, erase_scale=1.0, preserve_scale=None)
    _, record = _erase(tiny_pipeline_dir, tmp_path, "uce", settings)
    assert record["preserve_prompts"] == 5 and record["preserved_rows"] == 5 * 77 and record["preserve_scale"] == 0.2
    assert set(scales) == {0.2}
    (tmp_path / "none").mkdir()
    _, record = _erase(tiny_pipeline_dir, tmp_path / "none", "uce", dict(settings, preserve="none"))
    assert record["preserve_prompts"] == 1 and record["preserve_scale"] == 1.0  # "" alone, as the reference


@pytest.mark.parametrize("xt_source", ["concept_images", "model"])
def test_esd_runs_on_the_sd_layout(sd_layout_dir, tmp_path, xt_source):
    from unerase.images_io import save_image_set

    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    settings = dict(iterations=2, lr=1e-4, negative_guidance=1.0, batch_size=2, xt_source=xt_source, ddim_steps=3, start_guidance=3.0)
    patch, record = _erase(sd_layout_dir, tmp_path, "esd-x", settings, concept_images=str(tmp_path / "ci.safetensors"))
    assert patch and all(".attn2." in k for k in patch) and record["trained_tensors"] == len(patch)


def test_esd_trains_on_the_bare_name_as_train_esd_py_or_on_the_templates(sd_layout_dir, tmp_path, monkeypatch):
    """erasure.esd.prompts: "name" conditions every row on the concept's text alone (train-esd.py's --prompt,
    config/sd14.yaml); "templates" on the run's templates filled with it (the digits default)."""
    from unerase.erasure import esd
    from unerase.images_io import save_image_set

    seen = []
    real = esd.encode
    monkeypatch.setattr(esd, "encode", lambda tok, enc, texts: seen.append(list(texts)) or real(tok, enc, texts))
    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    settings = dict(iterations=2, lr=1e-4, negative_guidance=1.0, batch_size=2, xt_source="concept_images", ddim_steps=3,
                    start_guidance=3.0)
    for folder, prompts in (("name", "name"), ("templates", "templates")):
        seen.clear()
        (tmp_path / folder).mkdir()
        _erase(sd_layout_dir, tmp_path / folder, "esd-x", dict(settings, prompts=prompts), concept_images=str(tmp_path / "ci.safetensors"))
        rows = {row for texts in seen for row in texts if row}  # the unconditional rows are ""
        if prompts == "name":
            assert rows == {"zero"}
        else:
            assert "a photo of the digit zero" in rows and rows <= {"a photo of the digit zero", "zero"}  # _erase's two templates


def test_negative_prompt_guard_replaces_the_empty_prompt(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.erasure.guard_options import sampling_options
    from unerase.sampling import generate

    assert sampling_options("np", {"prompt": "{}"}, "zero") == {"negative_prompt": "zero"}
    with pytest.raises(ValueError, match="not an inference-time guard"):
        sampling_options("esd-x", {}, "zero")
    model = load_components(str(tiny_pipeline_dir))
    args = (model, ["the digit zero"] * 2, [1, 2], 3.0, 3, 2)
    plain = generate(*args)
    assert torch.equal(generate(*args, negative_prompt=""), plain)  # "" is classifier-free guidance's own
    assert not torch.equal(generate(*args, negative_prompt="zero"), plain)


def test_sld_presets_are_the_papers_and_their_guidance_terms():
    from unerase.erasure.guard_options import SLD_PRESETS, sampling_options
    from unerase.erasure.guards import SafeLatentGuidance

    # protocols.md: (guidance, warm-up, threshold, momentum, beta) of the ESD / CCE / UnlearnDiffAtk code
    assert SLD_PRESETS == {"weak": (200.0, 15, 0.0, 0.0, 0.0), "medium": (1000.0, 10, 0.01, 0.3, 0.4),
                           "strong": (2000.0, 7, 0.025, 0.5, 0.7), "max": (5000.0, 0, 1.0, 0.5, 0.7)}
    assert sampling_options("sld-medium", {"concept": "{}"}, "zero") == {"safety": {"preset": "medium", "concept": "zero"}}
    medium = SafeLatentGuidance.preset("medium", 10)
    assert medium.warmup_steps == 2 and SafeLatentGuidance.preset("medium", 50).warmup_steps == 10  # rescaled from 50 steps
    eps_u, eps_c = torch.zeros(4), torch.tensor([1.0, 1.0, 1.0, 1.0])
    eps_s = torch.tensor([1.0, 1.0 - 2**-11, 2.0, 0.0])  # c - s: 0, 2^-11 (exact in float32), -1, 1; threshold 0.01
    # step 0 (warm-up): plain guidance, but the momentum already accumulates
    torch.testing.assert_close(medium.guided(0, eps_u, eps_c, eps_s), eps_c - eps_u)
    scale = torch.tensor([0.0, 1000 * 2**-11, 1.0, 0.0])  # min(|c - s| * 1000, 1) where c - s < threshold, else 0
    first = (eps_s - eps_u) * scale
    torch.testing.assert_close(medium.momentum, 0.6 * first)
    medium.guided(1, eps_u, eps_c, eps_s)
    second = first + 0.3 * (0.6 * first)
    torch.testing.assert_close(medium.momentum, 0.4 * 0.6 * first + 0.6 * second)
    # after warm-up the safety term (with momentum) is subtracted from the guidance direction
    out = medium.guided(2, eps_u, eps_c, eps_s)
    momentum_before = 0.4 * 0.6 * first + 0.6 * second
    third = first + 0.3 * momentum_before
    torch.testing.assert_close(out, (eps_c - eps_u) - third)


def test_sld_guard_changes_the_samples(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.sampling import generate

    model = load_components(str(tiny_pipeline_dir))
    args = (model, ["the digit zero"] * 2, [1, 2], 3.0, 3, 2)
    assert not torch.equal(generate(*args, safety={"preset": "max", "concept": "zero"}), generate(*args))
