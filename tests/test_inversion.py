import pytest
import torch
from diffusers import StableDiffusionPipeline

from unerase.components import load_components
from unerase.diffusion import LatentBank
from unerase.inversion import init_vectors, invert, load_learned_embeds, save_learned_embeds


def test_inversion_changes_only_new_token_rows(tiny_pipeline_dir):
    model = load_components(str(tiny_pipeline_dir))
    before = model.text_encoder.get_input_embeddings().weight.detach().clone()
    unet_before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    bank = LatentBank(model.vae, images, model.vae_scale)
    vectors = invert(model, bank, token="<zero-inv>", templates=["a photo of the digit {}", "{}"], num_vectors=3,
                     init_text="digit", lr=5e-2, batch_size=4, steps=5, seed=0)
    after = model.text_encoder.get_input_embeddings().weight.detach()
    n_old = before.shape[0]
    assert after.shape[0] == n_old + 3
    assert torch.equal(after[:n_old], before)  # every existing token row untouched
    digit = before[model.tokenizer("digit", add_special_tokens=False).input_ids[0]]
    assert vectors.shape == (3, before.shape[1])
    assert all(not torch.allclose(v, digit) for v in vectors)  # the new rows did move from their init
    assert torch.equal(after[n_old:], vectors)
    assert all(torch.equal(unet_before[k], v) for k, v in model.unet.state_dict().items())  # UNet frozen


def test_learned_embeds_load_in_diffusers_and_ours(tiny_pipeline_dir, tmp_path):
    vectors = torch.randn(4, 64)
    path = tmp_path / "learned_embeds.safetensors"
    save_learned_embeds(str(path), "<six-inv>", vectors)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir, safety_checker=None, requires_safety_checker=False)
    pipe.load_textual_inversion(str(path))  # diffusers' own multi-vector loader
    ids = pipe.tokenizer.convert_tokens_to_ids(["<six-inv>", "<six-inv>_1", "<six-inv>_2", "<six-inv>_3"])
    torch.testing.assert_close(pipe.text_encoder.get_input_embeddings().weight[ids], vectors)
    ours = load_components(str(tiny_pipeline_dir))
    placeholder = load_learned_embeds(ours, str(path))
    assert placeholder == "<six-inv> <six-inv>_1 <six-inv>_2 <six-inv>_3"
    assert ours.tokenizer(placeholder, add_special_tokens=False).input_ids == ids


def test_vectors_only_inversion_equals_whole_table_inversion(tiny_pipeline_dir):
    """The K-vector parametrisation is an implementation detail: the learned vectors match the
    reference recipe (whole token table trainable, every other row restored after each step)."""
    import random

    from unerase.diffusion import denoising_loss
    from unerase.inversion import add_tokens, init_vectors, placeholder_tokens
    from unerase.text import encode

    templates, steps, seed = ["a photo of the digit {}", "{}"], 4, 0
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    ours = load_components(str(tiny_pipeline_dir))
    vectors = invert(ours, LatentBank(ours.vae, images, ours.vae_scale), token="<t>", templates=templates, num_vectors=2,
                     init_text="digit", lr=5e-2, batch_size=4, steps=steps, seed=seed)

    ref = load_components(str(tiny_pipeline_dir))
    bank = LatentBank(ref.vae, images, ref.vae_scale)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    placeholder = add_tokens(ref, "<t>", init_vectors(ref, "digit", 2))
    ids = torch.tensor(ref.tokenizer.convert_tokens_to_ids(placeholder_tokens("<t>", 2)))
    table = ref.text_encoder.get_input_embeddings().weight
    original = table.detach().clone()
    frozen = torch.ones(len(table), dtype=torch.bool)
    frozen[ids] = False
    table.requires_grad_(True)
    opt = torch.optim.AdamW([table], lr=5e-2, weight_decay=0.0)
    for _ in range(steps):
        captions = [rng.choice(templates).format(placeholder) for _ in range(4)]
        idx = torch.randint(0, len(bank), (4,), generator=gen)
        loss = denoising_loss(ref.unet, ref.scheduler, bank.draw(idx, gen), encode(ref.tokenizer, ref.text_encoder, captions), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            table[frozen] = original[frozen]
    torch.testing.assert_close(vectors, table.detach()[ids], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(vectors, original[ids])  # and both really moved


def _unet_output_dtypes(model):
    seen = []
    model.unet.register_forward_hook(lambda module, args, out: seen.append(out.sample.dtype))
    return seen


def test_mixed_precision_inversion_runs_the_forward_in_bfloat16_and_keeps_float32_vectors(tiny_pipeline_dir):
    # attacks.*.precision: autocast around each step's forward, the learned vectors and Adam's state stay float32
    kw = dict(templates=["a photo of the digit {}"], num_vectors=2, init_text="digit", lr=5e-2, batch_size=4, steps=3, seed=0)
    runs = {}
    for precision in ("float32", "bfloat16"):
        model = load_components(str(tiny_pipeline_dir))
        seen = _unet_output_dtypes(model)
        bank = LatentBank(model.vae, torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1, model.vae_scale)
        runs[precision] = invert(model, bank, token="<z>", precision=precision, **kw)
        assert set(seen) == {getattr(torch, precision)}
        assert runs[precision].dtype == torch.float32 and torch.isfinite(runs[precision]).all()
    assert not torch.equal(runs["float32"], runs["bfloat16"])  # the option reaches the arithmetic ...
    start = init_vectors(load_components(str(tiny_pipeline_dir)), "digit", 2)
    moved = {p: (v - start).flatten() for p, v in runs.items()}
    # ... and takes the same steps up to rounding (Adam normalises each coordinate, so compare the update's direction)
    assert torch.nn.functional.cosine_similarity(moved["float32"], moved["bfloat16"], dim=0) > 0.9


def test_mixed_precision_diverse_inversion_runs_the_forward_in_bfloat16(tiny_pipeline_dir):
    from unerase.attacks.diverse_inversion import diverse_invert

    model = load_components(str(tiny_pipeline_dir))
    seen = _unet_output_dtypes(model)
    bank = LatentBank(model.vae, torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1, model.vae_scale)
    vectors, losses = diverse_invert(model, bank, token="<d>", concept_text="zero", templates=["a photo of the digit {}"], indices=[0, 1],
                                     total=2, bands=[[-0.2, 0.2], [0.2, 0.6]], pairwise_max=1.0, diversity_weight=0.0, lr=1e-2,
                                     batch_per_embedding=2, steps=2, seed=0, precision="bfloat16")
    assert seen == [torch.bfloat16] * 2
    assert vectors.dtype == torch.float32 and torch.isfinite(vectors).all() and all(loss > 0 for loss in losses)


def _activation_bytes(model, fn) -> int:
    """Bytes autograd keeps for the backward of `fn()`, the model's own weights left out (they stay in memory anyway)."""
    weights = {p.untyped_storage().data_ptr() for p in [*model.unet.parameters(), *model.text_encoder.parameters()]}
    seen = set()

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen.add((storage.data_ptr(), storage.nbytes()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(n for _, n in seen)


def test_gradient_checkpointing_keeps_less_for_the_backward_and_learns_the_same_vectors(tiny_pipeline_dir):
    # attacks.*.gradient_checkpointing: the memory the sd14 config needs (100 Diverse-Inversion rows, SLD unrolled 26 times)
    from unerase.attacks.diverse_inversion import diverse_invert
    from unerase.attacks.sld_inversion import SldUnrolledObjective
    from unerase.runtime import activation_checkpointing
    from unerase.text import encode

    model = load_components(str(tiny_pipeline_dir))
    latents = torch.randn(8, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    context = encode(model.tokenizer, model.text_encoder, ["the digit zero"] * 8).detach().requires_grad_(True)
    kept = {}
    for on in (False, True):
        with activation_checkpointing(model.unet, on):
            kept[on] = _activation_bytes(model, lambda: model.unet(latents, torch.full((8,), 500), encoder_hidden_states=context).sample)
        assert not model.unet.is_gradient_checkpointing  # restored: a job that samples afterwards samples as before
    assert kept[True] < kept[False] / 2, kept

    def bank_of(m):
        return LatentBank(m.vae, torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1, m.vae_scale)

    def learned(on, objective=False):
        m = load_components(str(tiny_pipeline_dir))
        obj = SldUnrolledObjective(m, preset="max", safety_concept="zero", named_prompts=["the digit zero"], guidance_scale=3.0,
                                   unroll=3, window=75) if objective else None
        return invert(m, bank_of(m), token="<z>", templates=["the digit {}"], num_vectors=2, init_text="digit", lr=5e-2,
                      batch_size=4, steps=3, seed=0, objective=obj, gradient_checkpointing=on)

    for objective in (False, True):  # plain denoising, and the SLD-unrolled objective (the gradient crosses three UNet graphs)
        plain, checkpointed = learned(False, objective), learned(True, objective)
        start = init_vectors(load_components(str(tiny_pipeline_dir)), "digit", 2)
        assert not torch.allclose(checkpointed, start)  # the gradient reaches the tokens through the recomputed blocks ...
        assert torch.allclose(plain, checkpointed, atol=1e-5), (plain - checkpointed).abs().max()  # ... and is the same gradient

    def diverse(on):
        m = load_components(str(tiny_pipeline_dir))
        return diverse_invert(m, bank_of(m), token="<d>", concept_text="zero", templates=["the digit {}"], indices=[0, 1, 2], total=3,
                              bands=[[-0.2, 0.2], [0.2, 0.6]], pairwise_max=0.5, diversity_weight=1.0, lr=1e-2,
                              batch_per_embedding=2, steps=3, seed=0, gradient_checkpointing=on)

    (v0, l0), (v1, l1) = diverse(False), diverse(True)
    assert torch.allclose(v0, v1, atol=1e-5) and l0 == pytest.approx(l1, rel=1e-5)


class _Killed(Exception):
    pass


def test_a_killed_diverse_inversion_resumes_to_the_same_vectors(tiny_pipeline_dir, tmp_path):
    # SD 1.4's 100 embeddings take hours on an A100: a job killed at its time limit resumes on the retry
    from unerase.attacks.diverse_inversion import diverse_invert

    def run(checkpoint=None, die_at=None):
        model = load_components(str(tiny_pipeline_dir))
        bank = LatentBank(model.vae, torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1, model.vae_scale)

        class Progress:
            def update(self, step, loss):
                if step == die_at:
                    raise _Killed

        return diverse_invert(model, bank, token="<d>", concept_text="zero", templates=["the digit {}", "{}"], indices=[0, 1, 2], total=3,
                              bands=[[-0.2, 0.2], [0.2, 0.6]], pairwise_max=0.5, diversity_weight=1.0, lr=1e-2, batch_per_embedding=2,
                              steps=12, seed=0, progress=Progress(), checkpoint=checkpoint, checkpoint_every=5)

    straight, straight_losses = run()
    ckpt = tmp_path / "di.pt"
    with pytest.raises(_Killed):
        run(str(ckpt), die_at=11)  # after the checkpoints at steps 5 and 10; the loss tail is the last quarter, steps 9-11
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 10 and len(state["tail"]) == 1  # the checkpoint carries the tail's first row
    resumed, resumed_losses = run(str(ckpt))
    assert not ckpt.exists()  # cleared once the vectors are learned
    assert torch.equal(resumed, straight) and resumed_losses == straight_losses
