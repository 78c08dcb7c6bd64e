import torch
from diffusers import StableDiffusionPipeline

from unerase.components import load_components
from unerase.diffusion import LatentBank
from unerase.inversion import invert, load_learned_embeds, save_learned_embeds


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
