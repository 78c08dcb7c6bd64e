"""The fine-tuning erasure methods (Ablating Concepts, conditional fine-tune, Selective Amnesia,
Forget-Me-Not), IRECE and model stacks: their cores, and each method's run on SD 1.4's layout."""
from pathlib import Path

import pytest
import torch

from test_erasure_registry import _erase


def _concept_images(tmp_path, channels=3):
    from unerase.images_io import save_image_set

    images = torch.randint(0, 256, (4, channels, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
    return str(tmp_path / "ci.safetensors")


SAMPLING = {"sampling": dict(guidance_scale=3.0, num_steps=2, batch_size=4, precision="float32")}
SD_RUNS = {
    "ac": dict(anchor="", anchors={"zero": "number", "one": "numeral"}, anchor_images=4, parameters="cross-attn", steps=2, lr=1e-4,
               batch_size=2),
    "ft-cond": dict(images_per_class=2, concept_fraction=0.5, parameters="full", steps=2, lr=1e-4, batch_size=2, grad_clip=1.0),
    "sa": dict(surrogate="noise", surrogate_images=4, replay_images_per_class=2, fisher_samples=3, fisher_weight=50.0,
               parameters="non-cross-attn", steps=2, lr=1e-4, batch_size=2),
    "fmn": dict(parameters="cross-attn", steps=2, lr=1e-4, batch_size=2, ti_steps=0, ti_lr=1e-3, ti_vectors=1),
}
SELECTED = {"ac": lambda k: ".attn2." in k, "ft-cond": lambda k: True, "fmn": lambda k: ".attn2." in k,
            "sa": lambda k: ".attn2." not in k and not k.startswith(("conv_out.", "conv_norm_out.", "time_embedding."))}


@pytest.mark.parametrize("method", sorted(SD_RUNS))
def test_each_method_trains_its_parameter_group_on_the_sd_layout(method, sd_layout_dir, tmp_path):
    from unerase.components import load_components

    inputs = {"concept_images": _concept_images(tmp_path)} if method == "fmn" else {}
    patch, record = _erase(sd_layout_dir, tmp_path, method, SD_RUNS[method], shared=SAMPLING, **inputs)
    assert patch and all(SELECTED[method](k) for k in patch) and record["changed_tensors"] == len(patch)
    base = dict(load_components(str(sd_layout_dir)).unet.named_parameters())
    moved = [k for k, v in patch.items() if not torch.equal(v, base[k])]
    assert len(moved) > len(patch) // 2, f"{method} changed {len(moved)} of the {len(patch)} tensors it trains"


def test_ablating_takes_the_concepts_own_anchor_where_one_is_given(sd_layout_dir, tmp_path):
    """`anchors` maps a concept to its category (the paper: Grumpy Cat -> cat); the others keep `anchor` ("": the templates
    without the name, on SD a generic "a photo of a")."""
    from unerase.erasure.ablating import anchor_of

    s = dict(anchor="", anchors={"garbage_truck": "truck"})
    assert anchor_of(s, "garbage truck") == "truck" and anchor_of(s, "church") == "" and anchor_of(dict(anchor="x"), "zero") == "x"
    _, record = _erase(sd_layout_dir, tmp_path, "ac", SD_RUNS["ac"], shared=SAMPLING)
    assert record["anchor_prompts"] == ["a photo of the digit number", "number"]


def test_recording_cross_attention_changes_nothing_and_sees_the_probabilities(tiny_pipeline_dir):
    from unerase.attention import CrossAttentionMaps, aggregate, concept_positions
    from unerase.components import load_components
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn((2, *model.latent_shape), generator=g), torch.tensor([500, 20])
    context = encode(model.tokenizer, model.text_encoder, ["the digit zero", "zero zero"])
    plain = model.unet(x, t, encoder_hidden_states=context).sample
    before = dict(model.unet.attn_processors)
    with CrossAttentionMaps(model.unet) as maps:
        recorded = model.unet(x, t, encoder_hidden_states=context).sample
    torch.testing.assert_close(recorded, plain, rtol=1e-5, atol=1e-6)
    assert maps.probs and all(".attn2." in name for name in maps.probs)
    for p in maps.probs.values():  # (B, heads, HW, 77), each position's attention a distribution over tokens
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    positions = concept_positions(model.tokenizer, ["the digit zero", "zero zero"], "zero")
    assert positions.sum(1).tolist() == [1, 2] and positions[0, 3] and positions[1, 1] and positions[1, 2]
    layers = maps.token_maps(positions)
    first = next(iter(maps.probs.values()))
    torch.testing.assert_close(layers[0][1], first[1, :, :, 1:3].sum(-1).mean(0))
    assert aggregate(layers, 8).shape == (2, 8, 8)
    after = model.unet.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)  # the very processors restored


def test_irece_mask_follows_a_planted_attention_map_and_the_threshold():
    from unerase.attention import aggregate
    from unerase.erasure.irece import concept_mask

    # two layers of a planted map: a 4x4 layer with a bright top-left quadrant, an 8x8 layer with the same
    bright = torch.zeros(1, 4, 4)
    bright[0, :2, :2] = 1.0
    fine = torch.zeros(1, 8, 8)
    fine[0, :4, :4] = 1.0
    maps = aggregate([bright.flatten(1), fine.flatten(1)], 8)
    mask = concept_mask(maps, 0.4)[0, 0]
    assert mask[:3, :3].all() and not mask[5:, :].any() and not mask[:, 5:].any()
    # the threshold decides the edge: the bilinear ramp of the coarse layer crosses 0.4 and 0.9 at different places
    assert concept_mask(maps, 0.9)[0, 0].sum() < mask.sum() <= concept_mask(maps, 0.1)[0, 0].sum()
    # normalisation is per image: a scaled map gives the same mask
    assert torch.equal(concept_mask(maps * 7 + 3, 0.4), concept_mask(maps, 0.4))


def test_irece_replaces_exactly_the_masked_latent_with_noise(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.erasure.irece import Irece

    model = load_components(str(tiny_pipeline_dir))
    irece = Irece(model.unet, model.tokenizer, model.text_encoder, concept="zero", threshold=0.4, at=0.3, num_steps=10, seeds=[1, 2])
    assert irece.step == 3
    x = torch.randn((2, *model.latent_shape), generator=torch.Generator().manual_seed(0))
    assert torch.equal(irece(2, torch.tensor(700), x), x)  # not the intervention step
    out = irece(3, torch.tensor(700), x)
    mask = irece.last_mask.expand_as(x)
    assert mask.any() and not mask.all()
    assert torch.equal(out[~mask], x[~mask]) and not torch.equal(out[mask], x[mask])
    again = Irece(model.unet, model.tokenizer, model.text_encoder, concept="zero", threshold=0.4, at=0.3, num_steps=10, seeds=[2])
    torch.testing.assert_close(again(3, torch.tensor(700), x[1:]), out[1:])  # per-image noise: batching does not matter


def test_stacks_parse_and_refuse_what_is_not_a_model():
    from unerase.erasure import parse_stack, stack_label

    weights, guards = parse_stack("esd-x+irece")
    assert weights.name == "esd-x" and [g.name for g in guards] == ["irece"] and stack_label("tv+sld-medium") == "TV+SLD-Medium"
    assert parse_stack("np+irece")[0] is None
    for bad, why in [("esd-x+tv", "at most one weight method"), ("irece+esd-x", "at most one weight method"),
                     ("esd-x+irece+irece", "twice"), ("esd-x+xattn", "unknown erasure method 'xattn'"),
                     ("sld-weak+sld-max", "two guards of one kind")]:
        with pytest.raises(ValueError, match=why):
            parse_stack(bad)


def test_irece_stacked_on_an_erased_model_reads_the_standard_models_attention(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.sampling import generate

    base, erased = load_components(str(tiny_pipeline_dir)), load_components(str(tiny_pipeline_dir))
    with torch.no_grad():
        for p in erased.unet.parameters():
            p.mul_(0.9)
    args = (["the digit zero"] * 2, [1, 2], 3.0, 4, 2)
    options = {"concept": "zero", "threshold": 0.4, "at": 0.5}
    guarded = generate(erased, *args, irece=options, standard_unet=base.unet)
    assert not torch.equal(guarded, generate(erased, *args))
    assert not torch.equal(guarded, generate(erased, *args, irece=options))  # the mask came from the standard model


RECELER = dict(rank=2, steps=3, lr=3e-4, batch_size=2, negative_guidance=1.0, regularisation=0.1, mask_threshold=0.1,
               adversarial_tokens=2, adversarial_every=2, adversarial_steps=2, adversarial_lr=1e-2)


def test_a_fresh_eraser_changes_nothing_and_a_patch_of_erasers_reloads(tiny_pipeline_dir, tmp_path):
    from unerase.adapters import install_erasers
    from unerase.components import load_components, load_unet_patch, save_unet_patch

    model = load_components(str(tiny_pipeline_dir))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn((1, *model.latent_shape), generator=g), torch.tensor([300])
    context = torch.randn((1, 77, model.unet.config.cross_attention_dim), generator=g)
    plain = model.unet(x, t, encoder_hidden_states=context).sample
    erasers = install_erasers(model.unet, 3)
    assert len(erasers) == sum(name.endswith(".attn2") for name, _ in model.unet.named_modules())
    torch.testing.assert_close(model.unet(x, t, encoder_hidden_states=context).sample, plain)  # up is zero: identity
    with torch.no_grad():
        for e in erasers.values():
            e.up.weight.normal_(generator=g)
    edited = model.unet(x, t, encoder_hidden_states=context).sample
    assert not torch.allclose(edited, plain)
    names = [n for n, _ in model.unet.named_parameters() if ".attn2.eraser." in n]
    save_unet_patch(model.unet.state_dict(), names, tmp_path / "erasers.safetensors")
    fresh = load_components(str(tiny_pipeline_dir))
    assert sorted(load_unet_patch(fresh.unet, tmp_path / "erasers.safetensors")) == sorted(names)  # installs, then loads
    torch.testing.assert_close(fresh.unet(x, t, encoder_hidden_states=context).sample, edited)


@pytest.mark.parametrize("layout", ["embedded", "sd", "sd14-settings", "reference-mask"])
def test_receler_trains_only_its_erasers(layout, tiny_pipeline_dir, sd_layout_dir, tmp_path, monkeypatch):
    """Also with config/sd14.yaml's x_t sampled by the model being trained (the reference's quick_sample_till_t)."""
    from unerase.components import load_components, load_unet_patch

    pipe = tiny_pipeline_dir if layout == "embedded" else sd_layout_dir
    if layout == "embedded":
        from unerase.images_io import save_image_set

        images = torch.randint(0, 256, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        save_image_set(tmp_path / "ci.safetensors", images, [0] * 4, ["zero"] * 4)
        concept_images = str(tmp_path / "ci.safetensors")
    else:
        concept_images = _concept_images(tmp_path)
    settings = dict(RECELER, xt_source="model", ddim_steps=3, start_guidance=3.0) if layout == "sd14-settings" else RECELER
    if layout == "reference-mask":  # the SD-layout test UNet's cross-attention runs at 8 x 8 (SD 1.4: 16 as well)
        settings = dict(RECELER, mask="reference", mask_resolution=8)
    sampled = []
    if layout == "sd14-settings":
        from unerase.erasure import receler

        real = receler.model_sampled_xt
        # x_t is drawn by the eraser-equipped UNet (the one being trained), not the frozen copy
        monkeypatch.setattr(receler, "model_sampled_xt", lambda unet, *a: sampled.append(
            any(".eraser." in n for n, _ in unet.named_parameters())) or real(unet, *a))
    patch, record = _erase(pipe, tmp_path, "receler", settings, concept_images=concept_images)
    assert sampled == ([True] * len(sampled) if layout == "sd14-settings" else []) and (layout != "sd14-settings" or sampled)
    assert patch and all(".attn2.eraser." in k for k in patch) and record["erasers"] == len(patch) // 4
    assert any(k.endswith("up.weight") and v.abs().sum() > 0 for k, v in patch.items())  # the erasers moved off identity
    model = load_components(str(pipe))
    load_unet_patch(model.unet, tmp_path / "receler.safetensors")
    base = {n for n, _ in load_components(str(pipe)).unet.named_parameters()}
    added = {n for n, _ in model.unet.named_parameters()} - base
    assert added == set(patch)  # the loader re-created exactly the erasers the patch holds


def test_receler_reference_penalty_counts_only_the_outside_pixels():
    """concept_reg.py: per eraser, the output's squared channel mean summed outside the region (the mask resized by
    nearest neighbour to the layer) over the number of outside pixels; the mean over erasers."""
    from types import SimpleNamespace

    from unerase.erasure.receler import outside_penalty

    inside = torch.zeros(1, 2, 2, dtype=torch.bool)
    inside[0, 0, 0] = True  # the top-left quarter is the concept
    small = torch.full((1, 4, 3), 2.0)  # a 2 x 2 layer: every output 2, squared channel mean 4
    large = torch.ones(1, 16, 3)
    large[0, 0] = 100.0  # a 4 x 4 layer: inside the (upsampled) region, so not penalised
    erasers = {"a": SimpleNamespace(last=small), "b": SimpleNamespace(last=large)}
    assert float(outside_penalty(erasers, inside)) == pytest.approx((4.0 + 1.0) / 2)


def test_receler_reference_mask_needs_a_layer_of_its_resolution(sd_layout_dir):
    from unerase.attention import concept_positions
    from unerase.components import load_components
    from unerase.erasure.receler import reference_mask
    from unerase.text import encode

    model = load_components(str(sd_layout_dir))
    cond = encode(model.tokenizer, model.text_encoder, ["zero"] * 2)
    positions = concept_positions(model.tokenizer, ["zero"] * 2, "zero")
    x = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 500])
    mask = reference_mask(model.unet, x, t, cond, positions, 8, 0.1)
    assert mask.shape == (2, 8, 8) and mask.dtype == torch.bool and mask.any() and not mask.all()
    assert torch.equal(reference_mask(model.unet, x, t, cond, positions, 8, 0.0), torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'erasure.receler.mask_resolution': 16: this UNet's cross-attention maps are \[4, 8\] pixels"):
        reference_mask(model.unet, x, t, cond, positions, 16, 0.1)


def test_irece_runs_on_the_sd_layout(sd_layout_dir):
    from unerase.components import load_components
    from unerase.erasure.irece import Irece
    from unerase.sampling import generate

    model = load_components(str(sd_layout_dir))
    args = (model, ["a photo of the digit zero"] * 2, [1, 2], 3.0, 3, 2)
    guarded = generate(*args, irece={"concept": "zero", "threshold": 0.4, "at": 0.5})
    plain = generate(*args)
    assert guarded.shape == plain.shape == (2, 3, 16, 16) and not torch.equal(guarded, plain)
    irece = Irece(model.unet, model.tokenizer, model.text_encoder, concept="zero", threshold=0.4, at=0.5, num_steps=3, seeds=[1, 2])
    x = torch.randn((2, *model.latent_shape), generator=torch.Generator().manual_seed(0))
    irece(irece.step, torch.tensor(500), x)
    assert irece.last_mask.shape == (2, 1, *model.latent_shape[1:]) and irece.last_mask.any()


def test_irece_locates_only_the_concepts_words_of_its_context(tiny_pipeline_dir):
    from unerase.components import load_components
    from unerase.erasure.guard_options import sampling_options
    from unerase.erasure.irece import Irece

    options = sampling_options("irece", {"concept": "a photo of {}", "threshold": 0.4, "at": 0.3}, "zero")["irece"]
    assert options["concept"] == "a photo of zero" and options["tokens"] == "zero"
    model = load_components(str(tiny_pipeline_dir))
    irece = Irece(model.unet, model.tokenizer, model.text_encoder, num_steps=10, seeds=[1], **options)
    assert irece.positions.sum().item() == 1 and irece.positions[0, 4]  # <start> a photo of zero


def test_the_shared_training_loop_resumes_to_the_same_weights(tmp_path):
    """Killed after a checkpoint and run again, it ends where an uninterrupted run ends: parameters,
    optimiser, and the torch and Python random streams (which draw the prompts) all resume."""
    from unerase.erasure import training

    def run(checkpoint, stop_at=None):
        torch.manual_seed(123)
        layer = torch.nn.Linear(3, 1)

        def loss_fn(step, gen, rng):
            if step == stop_at:
                raise KeyboardInterrupt
            x = torch.randn((4, 3), generator=gen) * rng.choice([0.5, 1.0, 2.0])
            return (layer(x) - rng.random()).pow(2).mean() + torch.rand(()) * 0  # the global stream is drawn too

        training.train("toy", dict(layer=layer), list(layer.parameters()), loss_fn, steps=7, lr=0.1, seed=5, settings={},
                       checkpoint=checkpoint, checkpoint_every=2)
        return [p.detach().clone() for p in layer.parameters()]

    straight = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "ckpt.pt"), stop_at=5)
    assert (tmp_path / "ckpt.pt").exists()
    resumed = run(str(tmp_path / "ckpt.pt"))
    for a, b in zip(straight, resumed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_checkpoint_written_with_other_templates_or_sampling_is_not_resumed():
    from unerase.checkpoint import fingerprint
    from unerase.erasure.job import ErasureJob

    def job(**change):
        kw = dict(model=None, method="sa", settings={"steps": 3}, concept_text="zero", label=0, classes={"zero": 0, "one": 1},
                  templates=["{}"], seed=0, manifest="m", shared={"sampling": {"num_steps": 10}})
        kw.update(change)
        return fingerprint(ErasureJob(**kw).fingerprint())

    same = job()
    assert job() == same
    assert job(templates=["the digit {}"]) != same and job(shared={"sampling": {"num_steps": 25}}) != same
    assert job(settings={"steps": 4}) != same and job(concept_text="one") != same


def _token_attention(model, unet, prompts, target, bank):
    """Mean cross-attention mass on `target`'s tokens over fixed noisy concept latents."""
    from unerase.attention import CrossAttentionMaps, concept_positions
    from unerase.diffusion import add_noise
    from unerase.text import encode

    gen = torch.Generator().manual_seed(1)
    x_t, _, t = add_noise(model.scheduler, bank.draw(torch.arange(len(bank)), gen), gen)
    positions = concept_positions(model.tokenizer, prompts, target)
    with torch.no_grad(), CrossAttentionMaps(unet) as maps:
        unet(x_t, t, encoder_hidden_states=encode(model.tokenizer, model.text_encoder, prompts))
        layers = maps.token_maps(positions)
    return float(sum(m.mean() for m in layers) / len(layers))


def test_forget_me_not_with_its_ti_stage_resteers_the_learned_tokens(tiny_pipeline_dir, tmp_path):
    # The reference's two stages: the concept learned as tokens (ti.yaml), then their cross-attention re-steered to
    # nothing (attn.yaml). The tokens are learned again identically inside erase (same seed), so they can be measured.
    from unerase.components import load_components
    from unerase.erasure import forget_me_not
    from unerase.erasure.job import ErasureJob

    settings = dict(parameters="cross-attn", steps=15, lr=1e-3, batch_size=4, ti_steps=3, ti_lr=1e-2, ti_vectors=2)

    def job():
        return ErasureJob(model=load_components(str(tiny_pipeline_dir)), method="fmn", settings=settings, concept_text="zero",
                          label=0, classes={"zero": 0, "one": 1}, templates=["a photo of the digit {}"], seed=0, manifest="",
                          inputs={"concept_images": _concept_images(tmp_path, channels=1)})

    probe = job()
    bank = probe.concept_bank()
    with_tokens, target, norms = forget_me_not.learn_concept_tokens(probe, bank)
    assert target == "<fmn-concept> <fmn-concept>_1" and len(norms) == 2
    prompts = [f"a photo of the digit {target}"] * len(bank)
    before = _token_attention(with_tokens, with_tokens.unet, prompts, target, bank)
    assert "<fmn-concept>" not in probe.model.tokenizer.get_vocab()  # the tokens live on a copy of the text side

    erased = job()
    result = forget_me_not.erase(erased)
    assert result.info["resteered"] == "textual-inversion tokens" and result.info["ti_tokens"] == target
    assert result.changed and all(".attn2." in name for name in result.changed)
    after = _token_attention(with_tokens, erased.model.unet, prompts, target, bank)
    assert after < 0.5 * before, (before, after)


def test_forget_me_not_with_its_ti_stage_runs_on_the_sd_layout(sd_layout_dir, tmp_path):
    settings = dict(SD_RUNS["fmn"], ti_steps=2, ti_vectors=2)
    patch, record = _erase(sd_layout_dir, tmp_path, "fmn", settings, shared=SAMPLING, concept_images=_concept_images(tmp_path))
    assert patch and all(".attn2." in k for k in patch)
    assert record["resteered"] == "textual-inversion tokens" and len(record["ti_vector_norms"]) == 2


@pytest.mark.parametrize("method", ["sa", "ft-cond"])
def test_methods_train_on_images_no_evaluated_cell_draws(method, sd_layout_dir, tmp_path, monkeypatch):
    """Selective Amnesia's replay and the conditional fine-tune's targets were drawn from image_seeds(seed), the seeds of
    every prompt set's cells: the first images they trained on were exactly the control cell's (same prompts, same
    noises). Their seeds now start at TRAINING_IMAGES_START, past any cell."""
    from unerase.erasure import training
    from unerase.seeding import SEED_BLOCK, image_seeds

    drawn = []
    real = training.generate

    def recording(model, prompts, seeds, *args, **kwargs):
        drawn.extend(seeds)
        return real(model, prompts, seeds, *args, **kwargs)

    monkeypatch.setattr(training, "generate", recording)
    _erase(sd_layout_dir, tmp_path, method, SD_RUNS[method], shared=SAMPLING)
    assert drawn and not set(drawn) & set(image_seeds(0, 100_000)) and all(s < SEED_BLOCK for s in drawn)


def test_the_pooler_position_is_the_first_end_of_text_only(tokenizer):
    """Forget-Me-Not's use_pooler re-steers the end-of-text token CLIP pools; SD 1.4 pads with the same id, so the
    reference's id match would mark all 70-odd padding positions: only the first is marked."""
    from unerase.attention import end_of_text_positions

    prompts = ["a photo of the digit zero", "zero"]
    marked = end_of_text_positions(tokenizer, prompts)
    ids = tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert marked.sum(1).tolist() == [1, 1] and (ids == eos).sum(1).min() > 60
    assert all(ids[b, marked[b]].item() == eos and (ids[b, : marked[b].nonzero().item()] != eos).all() for b in range(2))


def test_forget_me_not_as_sd14_configures_it_runs_on_the_sd_layout(sd_layout_dir, tmp_path, monkeypatch):
    """attn.yaml as sd14.yaml has it: the whole UNet, the TI stage, the pooler, train_attn.py's loss, AdamW's decay 0.01."""
    import torch.optim

    optimisers = []
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, **kw: optimisers.append(kw) or real(params, **kw))
    settings = dict(SD_RUNS["fmn"], parameters="full", ti_steps=2, ti_vectors=4, use_pooler=True, grad_clip=None, loss="reference",
                    weight_decay=0.01)
    patch, record = _erase(sd_layout_dir, tmp_path, "fmn", settings, shared=SAMPLING, concept_images=_concept_images(tmp_path))
    assert record["ti_tokens"].count("<fmn-concept>") == 4 and any(".attn1." in k for k in patch)
    assert {kw.get("weight_decay") for kw in optimisers} >= {0.01}  # the re-steering's optimiser (the TI stage's has its own)


def test_forget_me_not_reference_loss_is_the_norm_over_every_head_and_token():
    """train_attn.py: torch.cat(attn_probs).norm() — each head's and each concept token's probabilities on their own,
    the L2 norm (not squared) over layers, heads, pixels and tokens; the head-mean loss squares head averages instead."""
    from unerase.erasure.forget_me_not import resteering_norm

    a = torch.zeros(1, 2, 3, 4)  # one layer: batch 1, 2 heads, 3 pixels, 4 tokens
    a[0, 0, 0, 1], a[0, 1, 0, 1], a[0, 0, 2, 2], a[0, 1, 1, 3] = 0.3, 0.5, 0.6, 0.9
    b = torch.full((1, 1, 2, 4), 0.1)  # a second layer, one head
    positions = torch.tensor([[False, True, True, False]])  # token 3 is not the concept's
    want = (0.3 ** 2 + 0.5 ** 2 + 0.6 ** 2 + 4 * 0.1 ** 2) ** 0.5
    assert float(resteering_norm([a, b], positions)) == pytest.approx(want)


def test_the_reference_fisher_squares_the_gradient_summed_over_every_timestep(tiny_pipeline_dir):
    """Selective Amnesia's SD code (ddpm_fim.py) sums a sample's denoising-loss gradients over all T timesteps and
    squares the sum; chunking the timesteps changes nothing, and it is not the mean of squared per-timestep gradients."""
    from diffusers import DDPMScheduler

    from unerase.components import load_components
    from unerase.diffusion import LatentBank
    from unerase.erasure.selective_amnesia import summed_timesteps_fisher
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    scheduler = DDPMScheduler(num_train_timesteps=12)
    images = torch.rand((2, 1, 16, 16), generator=torch.Generator().manual_seed(0)) * 2 - 1
    bank = LatentBank(model.vae, images, model.vae_scale)
    contexts = encode(model.tokenizer, model.text_encoder, ["zero", "one"]).detach()
    names = [n for n, _ in model.unet.named_parameters() if ".attn2.to_k." in n]
    for p in model.unet.parameters():
        p.requires_grad_(True)

    def fisher(chunk):
        return summed_timesteps_fisher(model.unet, scheduler, bank, contexts, names, 1, torch.Generator().manual_seed(3), chunk)

    whole, chunked = fisher(12), fisher(5)
    # by hand, one timestep at a time, with the same draws
    gen = torch.Generator().manual_seed(3)
    i = torch.randint(0, 2, (1,), generator=gen)
    x0 = bank.draw(i, gen)
    noises = torch.randn((12, *x0.shape[1:]), generator=gen)
    params = dict(model.unet.named_parameters())
    grads = []
    for t in range(12):
        tt = torch.tensor([t])
        pred = model.unet(scheduler.add_noise(x0, noises[t : t + 1], tt), tt, encoder_hidden_states=contexts[i]).sample
        grads.append(torch.autograd.grad((pred - noises[t : t + 1]).pow(2).mean(), [params[n] for n in names]))
    for k, n in enumerate(names):
        summed = sum(g[k] for g in grads)
        assert torch.allclose(whole[n], summed ** 2, rtol=1e-4, atol=1e-10) and torch.allclose(chunked[n], whole[n], rtol=1e-4, atol=1e-10)
        assert not torch.allclose(whole[n], sum(g[k] ** 2 for g in grads) / 12, rtol=1e-2)


def test_selective_amnesia_with_the_reference_fisher_runs_on_the_sd_layout(sd_layout_dir, tmp_path):
    settings = dict(SD_RUNS["sa"], fisher="reference", fisher_samples=1, fisher_chunk=250)  # as config/sd14.yaml, smaller
    patch, record = _erase(sd_layout_dir, tmp_path, "sa", settings, shared=SAMPLING)
    assert patch and all(SELECTED["sa"](k) for k in patch)


def test_selective_amnesias_reference_fisher_is_kept_for_the_rerun_after_a_kill(sd_layout_dir, tmp_path, monkeypatch):
    """The reference Fisher is ~1,000 UNet rows per sample (an hour on SD 1.4): a job killed in training (a time limit)
    resumes with the Fisher it computed, kept beside its checkpoint, and removes it when done."""
    from unerase.erasure import selective_amnesia, training
    from unerase.steps import base_model, erase

    computed, real_fisher, real_train = [], selective_amnesia.summed_timesteps_fisher, training.train
    monkeypatch.setattr(selective_amnesia, "summed_timesteps_fisher", lambda *a, **k: computed.append(1) or real_fisher(*a, **k))
    manifest, checkpoint = tmp_path / "manifest.json", tmp_path / "sa.ckpt"
    base_model.run(manifest=str(manifest), source="pretrained", path=str(sd_layout_dir))

    def run():
        erase.run(manifest=str(manifest), patch=str(tmp_path / "sa.safetensors"), record=str(tmp_path / "sa.json"), method="sa",
                  settings=dict(SD_RUNS["sa"], fisher="reference", fisher_samples=1, fisher_chunk=250), shared=SAMPLING,
                  concept_text="zero", label=0, classes={"zero": 0, "one": 1, "two": 2}, templates=["a photo of the digit {}", "{}"],
                  seed=0, checkpoint=str(checkpoint))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert Path(f"{checkpoint}.fisher").exists() and computed == [1]
    monkeypatch.setattr(training, "train", real_train)
    run()
    assert computed == [1] and not Path(f"{checkpoint}.fisher").exists() and (tmp_path / "sa.safetensors").exists()


def test_receler_sampling_its_own_x_t_needs_its_sampler_settings():
    import jsonschema
    import yaml

    from conftest import ROOT

    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    jsonschema.validate(config, schema)
    receler = config["erasure"]["receler"]
    for bad in (dict(receler, xt_source="model"), dict(receler, xt_source="model", ddim_steps=1, start_guidance=3.0)):
        config["erasure"]["receler"] = bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schema)
    config["erasure"]["receler"] = dict(receler, xt_source="model", ddim_steps=50, start_guidance=3.0)
    jsonschema.validate(config, schema)
