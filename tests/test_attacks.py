"""The attacks' registry, Ring-A-Bell's genetic search, and each attack's run on SD 1.4's layout."""
import json

import pytest
import torch
import yaml

from conftest import ROOT

from unerase import attacks
from unerase.attacks import ring_a_bell as rab


def test_registry_paths_and_errors():
    # white-box: learned on the audited weights; transfer: the base model's inversion; ring-a-bell: once on the base
    assert attacks.artefact_path("zero", "esd-x", "inversion") == "results/attacks/zero/esd-x/inversion/learned_embeds.safetensors"
    assert attacks.artefact_path("zero", "esd-x", "transfer") == "results/attacks/zero/base/inversion/learned_embeds.safetensors"
    assert attacks.artefact_path("zero", "uce", "ring-a-bell") == "results/attacks/zero/base/ring-a-bell/prompts.json"
    assert {a.access for a in attacks.ATTACKS.values()} == {"white-box", "black-box"}
    with pytest.raises(ValueError, match="unknown attack 'gcg'; known: inversion"):
        attacks.get("gcg")
    with pytest.raises(ValueError, match="reuses 'inversion'"):
        attacks.implementation("transfer")


def test_every_attack_has_its_code_config_block_and_schema_entry():
    import yaml

    from conftest import ROOT

    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["attacks"]["properties"]
    for config_file in ("config/config.yaml", "config/sd14.yaml", ".test/config.yaml"):
        config = yaml.safe_load((ROOT / config_file).read_text())["attacks"]
        assert set(config["run"]) <= set(attacks.ATTACKS), config_file
        for name, spec in attacks.ATTACKS.items():
            assert spec.access in ("white-box", "black-box") and spec.artefact in attacks.ARTEFACT_FILES
            assert set(spec.needs) <= {"concept_images"}, name  # what rules/common.smk provides
            if spec.module:
                assert spec.config in schema and spec.config in config, (config_file, name)
                assert callable(attacks.implementation(name).run)
            else:
                assert attacks.get(spec.reuses).module and spec.learned_on == "base", name


def test_shipped_configs_draw_the_per_method_inversion_sets_above_their_sampler():
    """CCE attacks Forget-Me-Not at a *higher* guidance scale. config/sd14.yaml overrides config/config.yaml, so a sampler
    scale raised there (7.5) with the digits' {fmn: 6.0} left in place would draw FMN's inversion set lower."""
    import yaml
    from snakemake.utils import update_config

    from conftest import ROOT
    from unerase.config_layers import keyed_mappings, replace_keyed_mappings

    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    sd14 = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())
    update_config(sd14, overlay)  # as the workflow combines them (rules/common.smk)
    replace_keyed_mappings(sd14, [overlay], keyed_mappings(yaml.safe_load((ROOT / "config/schema.yaml").read_text())))
    for name, config in (("config.yaml", base), ("sd14.yaml", sd14)):
        by_method = config["attacks"]["concept_inversion"]["guidance_scale_by_method"]
        assert "fmn" in by_method, name
        for method, scale in by_method.items():
            assert scale > config["sampling"]["guidance_scale"], (name, method, scale)


def test_selection_keeps_the_best_first():
    pop = torch.tensor([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]])
    kept = rab.select(pop, torch.tensor([5.0, 1.0, 4.0, 0.5, 3.0]), keep=2)
    assert kept.tolist() == [[4, 4], [2, 2]]


def test_crossover_keeps_parents_and_refills_to_the_population_size():
    parents = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    rows = [tuple(r) for r in parents.tolist()]
    copies = rab.crossover(parents, 7, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(copies[:3], parents) and len(copies) == 7 and all(tuple(r) in rows for r in copies.tolist())
    out = rab.crossover(parents, 9, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out[:3], parents) and len(out) == 9
    for a, b in zip(out[3::2].tolist(), out[4::2].tolist()):
        # a = i[:c] + j[c:] and b = j[:c] + i[c:] for some parents i, j and cut c
        assert any(tuple(i[:c] + j[c:]) == tuple(a) and tuple(j[:c] + i[c:]) == tuple(b)
                   for i in map(list, rows) for j in map(list, rows) for c in range(4))
    assert len(rab.crossover(parents, 8, 1.0, torch.Generator().manual_seed(0))) == 8  # an odd gap takes one child


def test_population_keeps_its_size_over_generations(monkeypatch):
    sizes = []
    real = rab.cached_fitness
    monkeypatch.setattr(rab, "fitness", lambda enc, pop, *a, **k: pop.float().sum(1))
    monkeypatch.setattr(rab, "cached_fitness", lambda enc, pop, *a, **k: (sizes.append(len(pop)), real(enc, pop, *a, **k))[1])
    rab.genetic_search(None, torch.zeros(1), torch.arange(10), bos=0, eos=1, length=3, population=11, generations=30,
                       mutation_rate=0.3, crossover_rate=0.3, gen=torch.Generator().manual_seed(0))
    assert sizes == [11] * 30


def test_each_distinct_candidate_is_encoded_once(monkeypatch):
    encoded = []
    monkeypatch.setattr(rab, "fitness", lambda enc, pop, *a, **k: (encoded.extend(map(tuple, pop.tolist())), pop.float().sum(1))[1])
    known = {}
    first = rab.cached_fitness(None, torch.tensor([[1, 2], [3, 4], [1, 2]]), None, 0, 1, known)
    second = rab.cached_fitness(None, torch.tensor([[3, 4], [5, 6]]), None, 0, 1, known)
    assert first.tolist() == [3, 7, 3] and second.tolist() == [7, 11] and encoded == [(1, 2), (3, 4), (5, 6)]


def test_mutation_changes_one_token_from_the_vocabulary_and_spares_the_best():
    pop = torch.zeros(6, 5, dtype=torch.long)
    vocab = torch.tensor([7, 8, 9])
    assert torch.equal(rab.mutate(pop, 0.0, vocab, torch.Generator().manual_seed(0)), pop)
    out = rab.mutate(pop, 1.0, vocab, torch.Generator().manual_seed(0))
    assert out[0].tolist() == [0] * 5 and torch.equal(pop, torch.zeros(6, 5, dtype=torch.long))  # best spared, input untouched
    for row in out[1:]:
        changed = row[row != 0]
        assert len(changed) == 1 and changed.item() in (7, 8, 9)


def test_vocabulary_leaves_out_special_tokens_and_the_concepts_words(tokenizer):
    vocab = set(rab.search_vocabulary(tokenizer, ["zero"]).tolist())
    zero = tokenizer("zero", add_special_tokens=False).input_ids
    assert not set(zero) & vocab and tokenizer.bos_token_id not in vocab and tokenizer.eos_token_id not in vocab
    assert set(tokenizer("three", add_special_tokens=False).input_ids) <= vocab and len(vocab) == len(tokenizer) - 2 - len(zero)


def test_genetic_search_finds_a_planted_prompt(tiny_pipeline_dir):
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    tok, enc = model.tokenizer, model.text_encoder
    planted = torch.tensor([[320, 1125, 539]])  # three ordinary tokens
    target = enc(rab.full_ids(planted, tok.bos_token_id, tok.eos_token_id, 77))[0][0].detach()
    vocab = torch.tensor([320, 1125, 539, 1000, 2000, 3000])
    ids, distance = rab.genetic_search(enc, target, vocab, bos=tok.bos_token_id, eos=tok.eos_token_id, length=3, population=30,
                                       generations=25, mutation_rate=0.5, crossover_rate=0.5, gen=torch.Generator().manual_seed(0))
    assert ids.tolist() == planted[0].tolist() and distance < 1e-6
    # the fitness is the squared distance of the hidden states: the planted prompt scores 0, another token does not
    scores = rab.fitness(enc, torch.tensor([[320, 1125, 539], [320, 1125, 1000]]), target, tok.bos_token_id, tok.eos_token_id)
    assert scores[0] < 1e-6 < scores[1]


def _attack(pipe_dir, tmp_path, attack, settings, artefact, **inputs):
    from unerase.steps import attack as step
    from unerase.steps import base_model

    manifest = tmp_path / "manifest.json"
    base_model.run(manifest=str(manifest), source="pretrained", path=str(pipe_dir))
    step.run(manifest=str(manifest), artefact=str(tmp_path / artefact), record=str(tmp_path / f"{attack}.json"), attack=attack,
             settings=settings, concept_text="zero", label=0, templates=["a photo of the digit {}", "{}"], seed=0, checkpoint=None,
             learned_on="base", **inputs)
    return json.loads((tmp_path / f"{attack}.json").read_text())


RAB = dict(num_prompts=2, prompt_length=4, eta=3.0, population=8, generations=3, mutation_rate=0.25, crossover_rate=0.5,
           exclude_concept_words=True)


def test_ring_a_bell_on_the_sd_layout_writes_prompts_without_the_name(sd_layout_dir, tmp_path):
    record = _attack(sd_layout_dir, tmp_path, "ring-a-bell", RAB, "prompts.json")
    found = json.loads((tmp_path / "prompts.json").read_text())
    assert record["access"] == "black-box" and len(found["prompts"]) == 2
    for f in found["found"]:
        assert len(f["token_ids"]) == 4 and "zero" not in f["prompt"].split() and f["distance"] > 0
    assert [f["start_prompt"] for f in found["found"]] == ["a photo of the digit zero", "zero"]


def test_concept_inversion_on_the_sd_layout_writes_loadable_embeddings(sd_layout_dir, tmp_path):
    from unerase.components import load_components
    from unerase.images_io import save_image_set
    from unerase.inversion import load_learned_embeds

    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    settings = dict(num_vectors=2, init_text="digit", lr=1e-2, batch_size=2, steps=2)
    record = _attack(sd_layout_dir, tmp_path, "inversion", settings, "emb.safetensors", concept_images=str(tmp_path / "ci.safetensors"))
    assert record["access"] == "white-box" and record["token"] == "<zero-inversion>"
    text = load_learned_embeds(load_components(str(sd_layout_dir)), str(tmp_path / "emb.safetensors"))
    assert text == "<zero-inversion> <zero-inversion>_1"


def test_concept_inversion_trains_on_its_own_captions_and_mirrored_images(sd_layout_dir, tmp_path, monkeypatch):
    """config/sd14.yaml trains the tokens as CCE does: diffusers' 27 object captions and each image with its mirror
    (RandomHorizontalFlip(p=0.5)); without those keys, prompts.templates and the images as they are."""
    from unerase.attacks import concept_inversion
    from unerase.images_io import save_image_set

    seen = []
    real = concept_inversion.invert
    monkeypatch.setattr(concept_inversion, "invert", lambda model, bank, **k: seen.append((len(bank), k["templates"])) or real(model, bank, **k))
    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    sd14 = yaml.safe_load((ROOT / "config/sd14.yaml").read_text())["attacks"]["concept_inversion"]
    settings = dict(num_vectors=1, init_text="digit", lr=1e-2, batch_size=2, steps=2)
    for folder, extra in (("own", dict(templates=sd14["templates"], flip=sd14["flip"])), ("plain", {})):
        (tmp_path / folder).mkdir()
        _attack(sd_layout_dir, tmp_path / folder, "inversion", dict(settings, **extra), "emb.safetensors",
                concept_images=str(tmp_path / "ci.safetensors"))
    assert seen == [(8, sd14["templates"]), (4, ["a photo of the digit {}", "{}"])] and len(sd14["templates"]) == 27

    from unerase.diffusion import LatentBank
    from unerase.components import load_components

    model = load_components(str(sd_layout_dir))
    bank = LatentBank.from_image_set(model, str(tmp_path / "ci.safetensors"), flip=True)
    mirrored = LatentBank.from_uint8(model, images.flip(-1))
    assert torch.allclose(bank.mean[4:], mirrored.mean)  # the second half encodes the mirrored images


def test_an_attacks_prompts_fill_its_prompt_set_in_turn():
    from unerase.prompts import build_prompts

    prompts, labels = build_prompts("ring-a-bell", ["{}"], "zero", 0, {"zero": 0, "one": 1}, 5, attack_prompts=["p q", "r s"])
    assert prompts == ["p q", "r s", "p q", "r s", "p q"] and labels == [0] * 5
    with pytest.raises(ValueError, match="prompt set 'ring-a-bell'"):
        build_prompts("ring-a-bell", ["{}"], "zero", 0, {"zero": 0}, 2)


# --- Diverse Inversion and the Erasure Score ---
from unerase.attacks import diverse_inversion as di  # noqa: E402
from unerase.text import name_embedding  # noqa: E402


def test_projection_moves_only_rows_outside_their_band_and_keeps_norms():
    d = torch.tensor([1.0, 0.0, 0.0])
    v = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.1, 0.0], [-1.0, 0.0, 3.0]])  # cos 0.71, 0.999, -0.32
    lows, highs = torch.tensor([0.5, 0.0, 0.0]), torch.tensor([0.9, 0.5, 0.2])
    out = di.project_to_bands(v, d, lows, highs)
    assert torch.equal(out[0], v[0])
    cos = di.cosine_to(out, d)
    assert cos[1] == pytest.approx(0.5, abs=1e-6) and cos[2] == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(out.norm(dim=1), v.norm(dim=1))
    assert out[1, 2] == 0 and out[1, 1] > 0  # rotated in the plane of itself and the direction


def _tiny_bank(model):
    from unerase.diffusion import LatentBank

    images = torch.randint(0, 256, (6, 1, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return LatentBank.from_uint8(model, images)


DI = dict(templates=["a photo of the digit {}", "{}"], bands=[[-0.2, 0.1], [0.1, 0.4], [0.4, 0.7]], lr=5e-2, batch_per_embedding=2,
          steps=6, seed=0)


def test_diverse_inversion_stays_in_its_bands_and_keeps_a_diverse_set(tiny_pipeline_dir):
    from unerase.components import load_components

    model = load_components(str(tiny_pipeline_dir))
    vectors, losses = di.diverse_invert(model, _tiny_bank(model), token="<d>", concept_text="zero", indices=list(range(6)), total=6,
                                        pairwise_max=0.3, diversity_weight=1.0, **DI)
    direction = name_embedding(model.tokenizer, model.text_encoder.get_input_embeddings().weight.detach(), "zero")
    cos = di.cosine_to(vectors, direction)
    for k in range(6):
        low, high = di.band_of(k, 6, DI["bands"])
        assert low - 1e-5 <= cos[k] <= high + 1e-5, (k, float(cos[k]))
    assert [di.band_of(k, 6, DI["bands"]) for k in (0, 1, 2, 5)] == [(-0.2, 0.1), (-0.2, 0.1), (0.1, 0.4), (0.4, 0.7)]
    sim = di.pairwise_similarity(vectors)
    kept = di.keep_diverse(sim, losses, 0.3)
    assert kept and all(sim[i, j] <= 0.3 + 1e-6 for i in kept for j in kept if i != j)
    assert min(range(6), key=losses.__getitem__) in kept  # the best embedding is always kept
    assert len(losses) == 6 and all(loss > 0 for loss in losses)


def test_one_batch_gives_each_embedding_the_result_of_its_own_run(tiny_pipeline_dir):
    from unerase.components import load_components

    def fresh():
        return load_components(str(tiny_pipeline_dir))

    model = fresh()
    together, losses = di.diverse_invert(model, _tiny_bank(model), token="<d>", concept_text="zero", indices=[0, 1, 2], total=3,
                                         pairwise_max=1.0, diversity_weight=0.0, **DI)
    for k in range(3):
        alone = fresh()
        vec, loss = di.diverse_invert(alone, _tiny_bank(alone), token="<d>", concept_text="zero", indices=[k], total=3,
                                      pairwise_max=1.0, diversity_weight=0.0, **DI)
        assert torch.allclose(vec[0], together[k], atol=1e-5), k
        assert loss[0] == pytest.approx(losses[k], rel=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_erasure_score_is_the_best_source_mean_of_planted_scores():
    from unerase.evaluation import erasure_score, learned_token, scores_by_token
    from unerase.steps.tables import erasure_scores

    prompts = ["the digit <z-di>_000", "<z-di>_001", "a photo of <z-di>_000", "<z-di>_001"]
    by_token = scores_by_token(torch.tensor([0.2, 0.9, 0.4, 0.5]), prompts)
    assert by_token == pytest.approx({"<z-di>_000": 0.3, "<z-di>_001": 0.7})
    assert learned_token("zero") is None and learned_token("a <zero-inversion> <zero-inversion>_1") == "<zero-inversion>"
    assert erasure_score(0.1, by_token) == pytest.approx(0.7) and erasure_score(0.95, by_token) == pytest.approx(0.95)
    metrics = [dict(concept="zero", model="tv", prompt_set="name", mean_label_probability=0.05),
               dict(concept="zero", model="tv", prompt_set="diverse-inversion", label_probability_by_token=by_token),
               dict(concept="zero", model="esd-x", prompt_set="name", mean_label_probability=0.8)]  # no DI cell: no score
    es = erasure_scores(metrics)
    assert len(es) == 1 and es.iloc[0]["erasure_score"] == pytest.approx(0.7) and es.iloc[0]["best_embedding"] == "<z-di>_001"


def test_a_set_of_learned_tokens_takes_turns_over_the_templates():
    from unerase.prompts import build_prompts

    prompts, _ = build_prompts("diverse-inversion", ["a {}", "b {}"], "zero", 0, {"zero": 0}, 6, placeholder=["<a>", "<b>", "<c>"])
    assert prompts == ["a <a>", "a <b>", "a <c>", "b <a>", "b <b>", "b <c>"]


def test_diverse_inversion_on_the_sd_layout_writes_its_kept_set_and_similarities(sd_layout_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from unerase.components import load_components
    from unerase.images_io import save_image_set
    from unerase.inversion import load_token_set

    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    settings = dict(num_embeddings=4, bands=[[-0.2, 0.2], [0.2, 0.6]], pairwise_max=0.9, diversity_weight=1.0, lr=1e-2,
                    batch_per_embedding=1, steps=2, gradient_checkpointing=True)  # as config/sd14.yaml
    record = _attack(sd_layout_dir, tmp_path, "diverse-inversion", settings, "di.safetensors", concept_images=str(tmp_path / "ci.safetensors"))
    kept = load_file(str(tmp_path / "di.safetensors"))
    assert record["kept"] == len(kept) >= 1 and all(v.shape == (1, 32) for v in kept.values())
    assert [e["band"] for e in record["embeddings"]] == [[-0.2, 0.2], [-0.2, 0.2], [0.2, 0.6], [0.2, 0.6]]
    assert all(e["band"][0] - 1e-5 <= e["similarity_to_concept"] <= e["band"][1] + 1e-5 for e in record["embeddings"])
    assert sum(record["histogram"]["pairwise"]) == 4 * 3
    texts = load_token_set(load_components(str(sd_layout_dir)), str(tmp_path / "di.safetensors"), as_token="<zero-di>")
    assert texts == [f"<zero-di>_{e['index']:03d}" for e in record["embeddings"] if e["kept"]]  # the record's indices
    save_file({"<zero-diverse-inversion>_001": torch.ones(1, 32), "<zero-diverse-inversion>_003": torch.zeros(1, 32)},
              str(tmp_path / "gaps.safetensors"))  # a kept set with gaps: names keep the indices
    model = load_components(str(sd_layout_dir))
    assert load_token_set(model, str(tmp_path / "gaps.safetensors"), as_token="<zero-transfer>") == ["<zero-transfer>_001", "<zero-transfer>_003"]
    ids = model.tokenizer("<zero-transfer>_003", add_special_tokens=False).input_ids
    assert len(ids) == 1 and model.text_encoder.get_input_embeddings().weight[ids[0]].abs().sum() == 0


def test_the_sld_unrolled_inversion_objective_differentiates_through_the_guard(tiny_pipeline_dir, monkeypatch):
    from unerase.attacks import sld_inversion
    from unerase.components import load_components
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    latents = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    leaf = encode(model.tokenizer, model.text_encoder, ["the digit seven", "seven"]).detach()
    monkeypatch.setitem(sld_inversion.SLD_PRESETS, "off", (0.0, 0, 0.0, 0.0, 0.0))  # no safety term: plain CFG

    def gradient(preset, safety="zero"):
        context = leaf.clone().requires_grad_(True)
        obj = sld_inversion.SldUnrolledObjective(model, preset=preset, safety_concept=safety, named_prompts=["the digit zero", "zero"],
                                                 guidance_scale=3.0, unroll=3, window=75)
        obj(latents, context, [0, 1], torch.Generator().manual_seed(1)).backward()
        return context.grad

    with_guard, without = gradient("max"), gradient("off")
    assert with_guard.abs().sum() > 0 and without.abs().sum() > 0
    assert not torch.allclose(with_guard, without)  # SLD's term is inside the graph the tokens are trained through
    assert not torch.allclose(with_guard, gradient("max", safety="three"))  # and it is the safety concept's
    # no SLD guard, or through_sld off: the plain denoising objective
    settings = dict(through_sld=True, sld_unroll=2, sld_window=75)
    assert sld_inversion.objective_for(model, {}, ["{}"], "zero", settings, {"guidance_scale": 3.0}) is None
    assert sld_inversion.objective_for(model, {"safety": {"preset": "max", "concept": "zero"}}, ["{}"], "zero",
                                       dict(settings, through_sld=False), {"guidance_scale": 3.0}) is None
    T = model.scheduler.config.num_train_timesteps
    for unroll, window in ((3, 2), (2, T)):  # more steps than the window has; a window as long as the schedule
        with pytest.raises(ValueError, match="sld_unroll.*sld_window"):
            sld_inversion.SldUnrolledObjective(model, preset="max", safety_concept="zero", named_prompts=["zero"], guidance_scale=3.0,
                                               unroll=unroll, window=window)


def test_concept_inversion_through_sld_on_the_sd_layout(sd_layout_dir, tmp_path, monkeypatch):
    from unerase.attacks import concept_inversion
    from unerase.images_io import save_image_set

    used = []
    real = concept_inversion.invert
    monkeypatch.setattr(concept_inversion, "invert", lambda *a, **k: used.append(k) or real(*a, **k))
    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    settings = dict(num_vectors=1, init_text="digit", lr=1e-2, batch_size=2, steps=2, through_sld=True, sld_unroll=2, sld_window=75,
                    gradient_checkpointing=True, sld_lr=2e-2, sld_batch_size=3, weight_decay=1e-2)  # as config/sd14.yaml
    record = _attack(sd_layout_dir, tmp_path, "inversion", settings, "emb.safetensors", concept_images=str(tmp_path / "ci.safetensors"),
                     guards={"safety": {"preset": "medium", "concept": "zero"}}, sampling={"guidance_scale": 3.0})
    assert record["objective"] == dict(kind="sld-unrolled", preset="medium", safety_concept="zero", g=3.0, unroll=2, window=75)
    # through SLD its own rate and batch (CCE's sld/train.sh differs from esd/train.sh); without a guard the plain ones
    (tmp_path / "plain").mkdir()
    _attack(sd_layout_dir, tmp_path / "plain", "inversion", settings, "emb.safetensors", concept_images=str(tmp_path / "ci.safetensors"))
    assert [(k["lr"], k["batch_size"], k["weight_decay"]) for k in used] == [(2e-2, 3, 1e-2), (1e-2, 2, 1e-2)]


def _regenerate(model, seeds, prompt=""):
    from unerase.sampling import ddim_loop
    from unerase.text import encode

    ctx = encode(model.tokenizer, model.text_encoder, [prompt] * len(seeds))
    with torch.no_grad():
        return ddim_loop(model.unet, model.scheduler, seeds, ctx, ctx, 3.0, 10)[0]


def _psnr(a, b):
    peak = b.abs().max()
    return float(10 * torch.log10(peak ** 2 / (a - b).pow(2).mean()))


def test_ddim_inversion_then_regeneration_reconstructs_the_latent(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.sampling import ddim_invert, initial_latents
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    z0 = _regenerate(model, initial_latents(model.latent_shape, [1, 2, 3, 4], "cpu"))  # points the sampler can reach
    seeds = ddim_invert(model, z0, encode(model.tokenizer, model.text_encoder, [""]), 10, batch_size=3)  # a batch split too
    back = _regenerate(model, seeds)
    unrelated = _regenerate(model, initial_latents(model.latent_shape, [5, 6, 7, 8], "cpu"))
    assert _psnr(back, z0) > 30 and _psnr(back, z0) > _psnr(unrelated, z0) + 15  # the seeds, not any seeds, give the images back
    assert not torch.allclose(seeds, z0)


def test_latent_inversion_on_the_sd_layout_writes_seeds_the_generation_step_reads(sd_layout_dir, tmp_path):
    from safetensors.torch import save_file

    from unerase.attacks.latent_inversion import read_inverted_latents
    from unerase.images_io import save_image_set

    images = torch.randint(0, 256, (5, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 5, ["zero"] * 5)
    record = _attack(sd_layout_dir, tmp_path, "latent-inversion", dict(prompt="{}", num_images=3), "inverted_latents.safetensors",
                     concept_images=str(tmp_path / "ci.safetensors"), sampling={"num_steps": 4})
    seeds, prompt = read_inverted_latents(str(tmp_path / "inverted_latents.safetensors"))
    assert seeds.shape == (3, 4, 8, 8) and prompt == "zero" and record["num_images"] == 3 and record["num_steps"] == 4
    with pytest.raises(ValueError, match="num_images: 9 asked"):
        _attack(sd_layout_dir, tmp_path, "latent-inversion", dict(prompt="", num_images=9), "x.safetensors",
                concept_images=str(tmp_path / "ci.safetensors"), sampling={"num_steps": 4})
    save_file({"emb": torch.zeros(1, 32)}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ValueError, match="not a latent-inversion file"):
        read_inverted_latents(str(tmp_path / "wrong.safetensors"))


def test_generation_from_given_seeds_is_generation_from_those_latents(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.sampling import generate, initial_latents

    model = load_components(str(tiny_pipeline_dir))
    drawn = generate(model, ["zero"] * 3, [4, 5, 6], 3.0, 4, 2)
    given = generate(model, ["zero"] * 3, [0, 0, 0], 3.0, 4, 2, latents=initial_latents(model.latent_shape, [4, 5, 6], "cpu"))
    assert torch.equal(drawn, given)


def test_the_modality_layout_puts_guards_under_their_model_and_groups_attacks():
    from unerase.tables import modality_order

    attacks_run = {"latent-transfer": dict(access="black-box", modality="latent"), "inversion": dict(access="white-box", modality="embedding"),
                   "ring-a-bell": dict(access="black-box", modality="text"), "latent-inversion": dict(access="white-box", modality="latent"),
                   "transfer": dict(access="black-box", modality="embedding")}
    rows, columns = modality_order(["esd-x", "uce", "np", "uce+irece", "esd-x+irece"], attacks_run)
    assert rows == ["esd-x", "esd-x+irece", "uce", "uce+irece", "np"]
    assert columns == ["name", "ring-a-bell", "inversion", "transfer", "latent-inversion", "latent-transfer"]


from unerase.attacks import unlearn_diff as ud  # noqa: E402


def test_simplex_projection_matches_a_hand_computation_and_is_the_nearest_point():
    v = torch.tensor([[0.6, 0.3, -0.2], [0.5, 0.5, 0.5], [2.0, 0.0, 0.0]])
    # row 1: the two largest keep their gap and share the missing 0.1 (theta -0.05); row 2: uniform; row 3: a vertex
    assert torch.allclose(ud.project_simplex(v), torch.tensor([[0.65, 0.35, 0.0], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]]))
    x = torch.randn(64, 50, generator=torch.Generator().manual_seed(0))
    p = ud.project_simplex(x)
    assert (p >= 0).all() and torch.allclose(p.sum(-1), torch.ones(64))
    # nearest: no other point of the simplex (random ones, and the projection nudged along an edge) is closer
    others = torch.distributions.Dirichlet(torch.ones(50)).sample((64,))
    assert ((x - p).norm(dim=-1) <= (x - others).norm(dim=-1) + 1e-6).all()
    # the textbook sort-based projection (Duchi et al. 2008) gives the same point
    u = torch.sort(x, dim=-1, descending=True).values
    excess = u.cumsum(-1) - 1
    rho = (u - excess / torch.arange(1, 51) > 0).sum(-1, keepdim=True)
    expected = (x - excess.gather(-1, rho - 1) / rho).clamp_min(0)
    assert torch.allclose(p, expected, atol=1e-6)
    # cut Michelot's rounds short: the top-k finish gives the same point (rows whose distribution concentrates slowly)
    for rounds in (0, 1, 2):
        assert torch.allclose(ud.project_simplex(x, rounds=rounds), expected, atol=1e-6)
    peaked = torch.cat([torch.linspace(1, 0, 200) ** 8, torch.zeros(49_000)])[None] * 3  # slow to converge
    assert torch.allclose(ud.project_simplex(peaked, rounds=2), ud.project_simplex(peaked, rounds=10_000), atol=1e-6)
    nudged = p.clone()
    nudged[:, 0] += 1e-3 * (p[:, 1] > 1e-3)
    nudged[:, 1] -= 1e-3 * (p[:, 1] > 1e-3)
    assert ((x - p).norm(dim=-1) <= (x - nudged).norm(dim=-1) + 1e-7).all()


def test_a_one_hot_draw_follows_the_distribution_and_passes_the_gradient_clipped():
    probs = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], requires_grad=True)
    draw = ud.SampleOneHot.apply(probs, torch.Generator().manual_seed(0))
    assert draw.tolist() == [[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
    (draw * torch.tensor([[[3.0, -0.5, -2.0], [0.2, 0.0, 9.0]]])).sum().backward()
    assert torch.allclose(probs.grad, torch.tensor([[[1.0, -0.5, -1.0], [0.2, 0.0, 1.0]]]))


def test_the_token_search_finds_planted_tokens_for_each_row():
    # one-hot embeddings: the straight-through gradient of the squared distance raises the planted token and lowers the drawn
    # one, so every row's distributions should end on its own planted tokens
    table = torch.eye(12)
    planted = torch.tensor([[3, 7], [10, 0]])
    probs = ud.token_search(lambda e, stage: ((e - table[planted]) ** 2).sum((1, 2)), table, num_rows=2, num_tokens=2, stages=3,
                            steps_per_stage=10, lr=0.05, weight_decay=0.0, generator=torch.Generator().manual_seed(0))
    assert probs.argmax(-1).tolist() == planted.tolist() and (probs.max(-1).values > 0.8).all()
    assert torch.allclose(probs.sum(-1), torch.ones(2, 2)) and (probs >= 0).all()


def test_stages_are_the_references_evenly_spaced_timesteps_and_the_prefix_follows_the_start_token(tokenizer):
    assert ud.stage_timesteps(1000, 50)[:3] == [10, 30, 50] and ud.stage_timesteps(1000, 50)[-1] == 990
    assert ud.stage_timesteps(1000, 4) == [125, 375, 625, 875]
    ids = ud.prefixed_ids(tokenizer, ["the digit zero"], 3)
    plain = tokenizer("the digit zero").input_ids
    assert ids.shape == (1, 77) and ids[0, 0] == tokenizer.bos_token_id and ids[0, 4:4 + len(plain) - 1].tolist() == plain[1:]


UD = dict(num_prompts=2, num_tokens=2, stages=2, steps_per_stage=2, lr=1e-2, weight_decay=0.1, images_per_prompt=2, exclude_concept_words=False)


def test_unlearn_diff_on_the_sd_layout_writes_prefixed_prompts_with_their_losses(sd_layout_dir, tmp_path):
    from unerase.images_io import save_image_set

    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["a photo of the digit zero", "zero"] * 2)
    record = _attack(sd_layout_dir, tmp_path, "unlearn-diff", UD, "prompts.json", concept_images=str(tmp_path / "ci.safetensors"))
    found = json.loads((tmp_path / "prompts.json").read_text())
    assert record["access"] == "white-box" and record["mean_loss_with"] > 0 and found["timesteps"] == [250, 750]
    assert [f["base_prompt"] for f in found["found"]] == ["a photo of the digit zero", "zero"]
    for f, prompt in zip(found["found"], found["prompts"]):
        assert len(f["token_ids"]) == 2 and prompt == f"{f['adversarial_tokens']} {f['base_prompt']}" and f["loss_without"] > 0
    # each prompt's objective uses the concept images drawn from it: images 0 and 2 for the first, 1 and 3 for the second
    from unerase.components import load_components
    model = load_components(str(sd_layout_dir))
    x0 = ud.concept_latents(model, str(tmp_path / "ci.safetensors"), ["a photo of the digit zero", "zero"], 2)
    reference = ud.concept_latents(model, str(tmp_path / "ci.safetensors"), ["x", "y"], 2)  # no prompt matches: images in turn
    assert torch.allclose(x0[[0, 1, 2, 3]], reference[[0, 2, 1, 3]])


def test_inline_attacks_learn_on_float32_weights_where_the_generation_job_samples_in_bfloat16(tiny_pipeline_dir, tmp_path):
    # config/sd14.yaml samples in float16: Concept Inversion, learned inside the generation job, met a half-precision UNet
    # with float32 latents ("Input type (float) and bias type (c10::Half)"); attacks learn on float32 weights, as attack jobs do
    import yaml
    from safetensors.torch import load_file

    from unerase.atomic import read_json, write_json
    from unerase.images_io import load_image_set, save_image_set
    from unerase.steps import generate as generation

    cfg = yaml.safe_load(open(".test/config.yaml"))
    manifest = tmp_path / "manifest.json"
    write_json(str(manifest), {"path": str(tiny_pipeline_dir)})
    concept_images = tmp_path / "concept.safetensors"
    save_image_set(concept_images, torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
                   [0] * 8, ["zero"] * 8)
    settings = dict(cfg["attacks"]["concept_inversion"], steps=2, batch_size=4)
    sampling = dict(cfg["sampling"], precision="bfloat16")
    emb, record, images = tmp_path / "learned_embeds.safetensors", tmp_path / "record.json", tmp_path / "inversion.safetensors"
    generation.run(manifest=str(manifest), images=[str(images)], grids=[str(tmp_path / "inversion.png")], prompt_sets=["inversion"],
                   concept_text="zero", label=0, classes=cfg["classes"], templates=cfg["prompts"]["templates"], num_images=3, seed=0,
                   guidance_scale=sampling["guidance_scale"], num_steps=2, batch_size=3, attack_sets=["inversion"], artefacts=[str(emb)],
                   inline={"inversion": dict(settings=settings, sampling=sampling, guards={})}, inline_artefacts=[str(emb)],
                   inline_records=[str(record)], model_name="base", concept_images=str(concept_images), precision="bfloat16")
    (token, vectors), = load_file(str(emb)).items()
    assert vectors.dtype == torch.float32 and torch.isfinite(vectors).all()
    assert read_json(str(record))["attack"] == "inversion"
    assert load_image_set(images)[0].shape[0] == 3
