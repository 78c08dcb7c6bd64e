"""Bring your own erased model: each accepted format round-trips; each bad input stops with one line
naming the file and the problem, and writes nothing."""
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from unerase.erasure.imported import ImportedModelError

KEY = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"


@pytest.fixture(scope="module")
def base_state(tiny_pipeline_dir):
    from unerase.components import load_components

    return {k: v.clone() for k, v in load_components(str(tiny_pipeline_dir)).unet.state_dict().items()}


def _import(pipe_dir, tmp_path, path):
    from unerase.steps import base_model, erase

    manifest = tmp_path / "manifest.json"
    base_model.run(manifest=str(manifest), source="pretrained", path=str(pipe_dir))
    patch = tmp_path / "patch.safetensors"
    erase.run(manifest=str(manifest), patch=str(patch), record=str(tmp_path / "erasure.json"), method="import", settings={"paths": {}},
              shared={}, concept_text="zero", label=0, classes={"zero": 0, "one": 1}, templates=["{}"], seed=0, checkpoint=None,
              imported=str(path))
    return load_file(str(patch))


def _edited(base_state):
    return {KEY: base_state[KEY] * 2}


@pytest.mark.parametrize("fmt", ["safetensors", "unet_folder", "pt_prefixed", "pt_nested"])
def test_each_format_round_trips(fmt, tiny_pipeline_dir, base_state, tmp_path):
    edited = _edited(base_state)
    if fmt == "safetensors":
        path = tmp_path / "esd.safetensors"
        save_file(edited, str(path))
    elif fmt == "unet_folder":  # a whole diffusers UNet: only the tensors that differ land in the patch
        from unerase.components import load_components

        unet = load_components(str(tiny_pipeline_dir)).unet
        with torch.no_grad():
            unet.state_dict()[KEY].mul_(2)
        path = tmp_path / "unet"
        unet.save_pretrained(path, safe_serialization=True)
    elif fmt == "pt_prefixed":
        path = tmp_path / "esd.pt"
        torch.save({f"unet.{k}": v for k, v in edited.items()}, path)
    else:
        path = tmp_path / "esd.ckpt"
        torch.save({"state_dict": edited}, path)
    patch = _import(tiny_pipeline_dir, tmp_path, path)
    assert list(patch) == [KEY] and torch.equal(patch[KEY], edited[KEY])


class NotATensor:
    pass


def _bad(tmp_path, base_state, kind):
    good = tmp_path / "good.safetensors"
    save_file(_edited(base_state), str(good))
    if kind == "missing":
        return tmp_path / "nowhere.safetensors", "no such file"
    if kind == "truncated_safetensors":
        path = tmp_path / "cut.safetensors"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return path, "not a readable safetensors file"
    if kind == "pickled_object":
        path = tmp_path / "evil.pt"
        torch.save({KEY: base_state[KEY], "payload": NotATensor()}, path)
        return path, "refused: it holds objects other than tensors"
    if kind == "plain_pickle":
        path = tmp_path / "plain.pt"
        path.write_bytes(pickle.dumps(NotATensor()))
        return path, "refused"
    if kind == "truncated_pt":
        full = tmp_path / "full.pt"
        torch.save(_edited(base_state), full)
        path = tmp_path / "cut.pt"
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        return path, "not a readable PyTorch checkpoint"
    if kind == "wrong_shape":
        path = tmp_path / "shape.safetensors"
        save_file({KEY: torch.zeros(3, 3)}, str(path))
        return path, f"tensor '{KEY}' has shape (3, 3)"
    if kind == "unknown_tensor":
        path = tmp_path / "extra.safetensors"
        save_file({"not.a.unet.weight": torch.zeros(1)}, str(path))
        return path, "tensors the base UNet does not have"
    if kind == "unchanged":
        path = tmp_path / "same.safetensors"
        save_file({KEY: base_state[KEY]}, str(path))
        return path, "nothing was erased"
    if kind == "ldm_names":
        path = tmp_path / "ldm.pt"
        torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, path)
        return path, "CompVis/LDM parameter names"
    if kind == "unknown_suffix":
        path = tmp_path / "model.onnx"
        path.write_bytes(b"x")
        return path, "unknown format '.onnx'"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "truncated_safetensors", "pickled_object", "plain_pickle", "truncated_pt", "wrong_shape",
                                  "unknown_tensor", "unchanged", "ldm_names", "unknown_suffix"])
def test_bad_input_is_one_line_naming_the_file(kind, tiny_pipeline_dir, base_state, tmp_path):
    path, problem = _bad(tmp_path, base_state, kind)
    with pytest.raises(ImportedModelError) as err:
        _import(tiny_pipeline_dir, tmp_path, path)
    message = str(err.value)
    assert str(path) in message and problem in message and "\n" not in message
    assert not (tmp_path / "patch.safetensors").exists() and not (tmp_path / "erasure.json").exists()
