"""The attacks' registry, Ring-A-Bell's genetic search, and each attack's run on SD 1.4's layout."""
import json

import pytest
import torch

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


def test_selection_keeps_the_better_half_best_first():
    pop = torch.tensor([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]])
    kept = rab.select(pop, torch.tensor([5.0, 1.0, 4.0, 0.5, 3.0]))
    assert kept.tolist() == [[4, 4], [2, 2]]


def test_crossover_keeps_parents_and_makes_one_point_children():
    parents = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert torch.equal(rab.crossover(parents, 0.0, torch.Generator().manual_seed(0)), parents)
    out = rab.crossover(parents, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out[:3], parents) and len(out) == 3 + 2 * 3
    rows = [tuple(r) for r in parents.tolist()]
    for a, b in zip(out[3::2].tolist(), out[4::2].tolist()):
        # a = i[:c] + j[c:] and b = j[:c] + i[c:] for some parents i, j and cut c
        assert any(tuple(i[:c] + j[c:]) == tuple(a) and tuple(j[:c] + i[c:]) == tuple(b)
                   for i in map(list, rows) for j in map(list, rows) for c in range(4))


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


def test_an_attacks_prompts_fill_its_prompt_set_in_turn():
    from unerase.prompts import build_prompts

    prompts, labels = build_prompts("ring-a-bell", ["{}"], "zero", 0, {"zero": 0, "one": 1}, 5, attack_prompts=["p q", "r s"])
    assert prompts == ["p q", "r s", "p q", "r s", "p q"] and labels == [0] * 5
    with pytest.raises(ValueError, match="prompt set 'ring-a-bell'"):
        build_prompts("ring-a-bell", ["{}"], "zero", 0, {"zero": 0}, 2)
