"""The Task-Vector paper's control task (§5.1): fixed free-text prompts drawn on each audited model, each image scored by
CLIP against its own prompt; the table's means, intervals and the prompts it leaves out of a concept's column."""
import json

import pytest
import torch

from unerase.images_io import load_image_set, save_image_set
from unerase.steps import control_task
from unerase.tables import control_task_long, control_task_table

PROMPTS = ["art by Picasso", "garbage truck", "Brad Pitt"]


def clip_block(tiny_clip_dir):
    name, weights = tiny_clip_dir
    return {"model": name, "pretrained": "random", "weights": str(weights), "template": "{}"}


def direct_similarity(tiny_clip_dir, images, texts):
    """(images, texts) cosine similarity matrix straight from open_clip."""
    import open_clip
    import torch.nn.functional as F

    from unerase.evaluators.open_clip_model import preprocess

    name, weights = tiny_clip_dir
    model = open_clip.create_model(name, pretrained=None)
    open_clip.load_checkpoint(model, str(weights))
    model.eval()
    with torch.no_grad():
        text = F.normalize(model.encode_text(open_clip.get_tokenizer(name)(texts)), dim=-1)
        image = F.normalize(model.encode_image(preprocess(images, open_clip.get_model_preprocess_cfg(model))), dim=-1)
    return image @ text.T


def test_each_image_is_scored_against_its_own_prompt(tiny_clip_dir, tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 40, 40), dtype=torch.uint8)
    prompts = control_task.control_prompts(PROMPTS, 7)
    assert prompts == PROMPTS * 2 + PROMPTS[:1]  # in turn, the first prompt one image more
    path = tmp_path / "control-prompts.safetensors"
    save_image_set(path, images, [control_task.NO_CLASS] * 7, prompts)
    out = tmp_path / "metrics.json"
    control_task.score(images=[str(path)], metrics=[str(out)], clip=clip_block(tiny_clip_dir),
                       cells=[{"concept": "garbage_truck", "model": "base"}])
    record = json.loads(out.read_text())
    matrix = direct_similarity(tiny_clip_dir, images, PROMPTS)
    own = matrix[torch.arange(7), torch.arange(7) % 3]
    assert record["similarities"] == pytest.approx(own.tolist(), abs=1e-5)
    # not another prompt's column: a pairing error would show here (random CLIP still separates the three prompts)
    assert (matrix[torch.arange(7), (torch.arange(7) + 1) % 3] - own).abs().max() > 1e-3
    assert record["mean_prompt_similarity"] == pytest.approx(float(own.mean()), abs=1e-6)
    assert record["prompt_similarity_by_prompt"]["art by Picasso"] == pytest.approx({"images": 3, "mean": float(own[[0, 3, 6]].mean())}, abs=1e-6)
    assert record["prompt_set"] == "control-prompts" and record["similarity_evaluator"]["rule"] == "cosine similarity of image and its prompt"
    assert record["similarity_evaluator"]["sha256"] == __import__("hashlib").sha256(tiny_clip_dir[1].read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="7 images but 6 prompts"):
        control_task.clip_similarity.load_prompt_similarity(clip_block(tiny_clip_dir)).similarity(images, prompts[:6])
    with pytest.raises(ValueError, match="evaluation.control_task.prompts' is empty"):
        control_task.control_prompts([], 4)


def record(concept, model, values):
    prompts = control_task.control_prompts(PROMPTS, len(values))
    return {"concept": concept, "model": model, "similarities": values, "prompts": prompts, "images": len(values),
            **control_task.summarise(values, prompts), "similarity_evaluator": {"name": "CLIP similarity ViT-B-32", "sha256": "ab"}}


def test_the_table_leaves_a_prompt_naming_the_concept_out_of_its_column():
    base = [0.30, 0.20, 0.32, 0.28, 0.22, 0.30]  # Picasso, garbage truck, Brad Pitt, twice
    erased = [0.29, 0.10, 0.31, 0.27, 0.12, 0.29]  # the garbage truck erased: its own prompt drops
    df = control_task_long([record("garbage_truck", "base", base), record("garbage_truck", "tv", erased),
                            record("church", "base", base), record("church", "tv", [0.2] * 6), record("truck", "base", base)])
    overall = df[df["prompt"] == "all"].set_index(["concept", "model"])
    assert overall.loc[("garbage_truck", "base"), "mean_similarity"] == pytest.approx((0.30 + 0.32 + 0.28 + 0.30) / 4)
    assert overall.loc[("garbage_truck", "tv"), "left_out"] == "garbage truck" and overall.loc[("garbage_truck", "tv"), "images"] == 4
    assert overall.loc[("church", "base"), "mean_similarity"] == pytest.approx(sum(base) / 6) and overall.loc[("church", "base"), "left_out"] == ""
    assert overall.loc[("truck", "base"), "left_out"] == "garbage truck"  # a whole word of the prompt, any case
    assert not control_task_long([record("bra", "base", base)])["left_out"].any()  # "Brad Pitt" does not name "bra"
    # Student-t interval over the images: [0.2] * 6 has none wider than zero, the others contain their mean
    assert overall.loc[("church", "tv"), "ci95_low"] == pytest.approx(0.2) == overall.loc[("church", "tv"), "ci95_high"]
    row = overall.loc[("garbage_truck", "base")]
    assert row["ci95_low"] < row["mean_similarity"] < row["ci95_high"]
    per_prompt = df[(df["concept"] == "garbage_truck") & (df["model"] == "tv")].set_index("prompt")["mean_similarity"]
    assert per_prompt["garbage truck"] == pytest.approx(0.11)  # kept in the per-prompt rows
    table = control_task_table(df[df["concept"] != "truck"], ["tv"], {"base": "original", "tv": "TV"}).set_index("model")
    assert table.loc["original", "garbage_truck"].startswith("0.300 [") and table.loc["TV", "church"] == "0.200 [0.200, 0.200]"
    tv_mean = ((0.29 + 0.31 + 0.27 + 0.29) / 4 + 0.2) / 2
    base_mean = (0.30 + sum(base) / 6) / 2
    assert table.loc["TV", "mean"] == f"{tv_mean:.3f}" and table.loc["TV", "vs base"] == f"{tv_mean - base_mean:+.3f}"


def test_generation_draws_the_prompts_in_turn_on_the_audited_model(sd_layout_dir, tmp_path):
    """On SD 1.4's layout (random weights): image i is prompt i mod P from the run's derived seed i, the same draw as
    sampling the prompt alone; a UNet patch changes the images (the erased model is the one drawn)."""
    from unerase.components import load_components, save_unet_patch
    from unerase.sampling import generate as sample
    from unerase.steps import base_model

    manifest = tmp_path / "manifest.json"
    base_model.run(manifest=str(manifest), source="pretrained", path=str(sd_layout_dir))
    settings = dict(prompts=PROMPTS[:2], num_images=3, seed=5, guidance_scale=3.0, num_steps=2, batch_size=2)
    control_task.generate(manifest=str(manifest), images=str(tmp_path / "base.safetensors"), grid=str(tmp_path / "base.png"), **settings)
    x, labels, meta = load_image_set(tmp_path / "base.safetensors")
    assert meta["prompts"] == ["art by Picasso", "garbage truck", "art by Picasso"] and labels.tolist() == [-1] * 3
    from unerase.seeding import derived

    alone = sample(load_components(str(sd_layout_dir)), ["garbage truck"], [derived(5, 1)], 3.0, 2, 1)
    assert torch.equal(x[1:2], alone)
    unet = load_components(str(sd_layout_dir)).unet
    name = next(n for n in unet.state_dict() if n.endswith("attn2.to_k.weight"))
    save_unet_patch({name: torch.zeros_like(unet.state_dict()[name])}, [name], tmp_path / "patch.safetensors")
    control_task.generate(manifest=str(manifest), images=str(tmp_path / "erased.safetensors"), grid=str(tmp_path / "erased.png"),
                          unet_patch=str(tmp_path / "patch.safetensors"), **settings)
    assert not torch.equal(load_image_set(tmp_path / "erased.safetensors")[0], x)
