"""The evaluators' interface: the registry, ResNet-50 on random weights of torchvision's architecture and CLIP
on random weights of a tiny open_clip model (label mapping, threshold, fingerprint), NudeNet's real detector
on a real photograph, the digit CNN through the interface, missing and broken weights in one line."""
import hashlib
import json

import pytest
import torch
import yaml

from conftest import ROOT
from unerase import evaluators
from unerase.evaluators.base import EvaluatorWeightsMissing


def test_registry_schema_and_configs_agree():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["evaluation"]["properties"]
    assert schema["evaluator"]["enum"] == list(evaluators.EVALUATORS)
    for config_file in ("config/config.yaml", "config/sd14.yaml", ".test/config.yaml"):
        assert yaml.safe_load((ROOT / config_file).read_text())["evaluation"]["evaluator"] in evaluators.EVALUATORS
    assert yaml.safe_load((ROOT / "config/sd14.yaml").read_text())["evaluation"]["evaluator"] == "resnet50"
    with pytest.raises(ValueError, match="unknown evaluator 'fid'; known: digit-cnn, resnet50, clip, nudenet"):
        evaluators.load("fid", {})


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """Random weights of torchvision's ResNet-50 whose head prefers ImageNet class 217 (English springer)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.bias[217] = 10.0  # softmax: e^10 / (e^10 + 999) = 0.957 for every image
    path = tmp_path_factory.mktemp("resnet") / "resnet50-random.pth"
    torch.save(model.state_dict(), path)
    return path


def test_resnet50_maps_imagenet_indices_and_applies_its_threshold(resnet_file):
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    labels = torch.tensor([217, 0, 217])
    scorer = evaluators.load("resnet50", {"tag": "IMAGENET1K_V1", "weights": str(resnet_file), "min_confidence": 0.9})
    scores = scorer.score(images, labels)
    assert scores.predicted.tolist() == [217, 217, 217]
    assert scores.hit.tolist() == [True, False, True]
    assert scores.probability[0] == pytest.approx(0.957, abs=1e-3) and scores.probability[1] < 1e-3
    strict = evaluators.load("resnet50", {"tag": "IMAGENET1K_V1", "weights": str(resnet_file), "min_confidence": 0.99})
    assert not strict.score(images, labels).hit.any()  # 0.957 is below this threshold


def test_resnet50_fingerprint_names_weights_tag_hash_threshold_and_classes(resnet_file):
    first = evaluators.load("resnet50", {"tag": "IMAGENET1K_V2", "weights": str(resnet_file), "min_confidence": 0.5}).fingerprint
    again = evaluators.load("resnet50", {"tag": "IMAGENET1K_V2", "weights": str(resnet_file), "min_confidence": 0.5}).fingerprint
    assert first == again
    assert first["sha256"] == hashlib.sha256(resnet_file.read_bytes()).hexdigest()
    assert (first["weights_tag"], first["threshold"], first["classes"]) == ("torchvision IMAGENET1K_V2", 0.5, "ImageNet-1k indices")
    assert json.loads(json.dumps(first)) == first  # goes into metric files as is


def test_missing_and_broken_weights_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(EvaluatorWeightsMissing, match=r"ResNet-50 weights not found at .*none\.pth: download resnet50-0676ba61\.pth"):
        evaluators.load("resnet50", {"tag": "IMAGENET1K_V1", "weights": str(tmp_path / "none.pth")})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # the standard cache, empty
    with pytest.raises(EvaluatorWeightsMissing, match=r"torch-home/hub/checkpoints/resnet50-11ad3fa6\.pth"):
        evaluators.load("resnet50", {"tag": "IMAGENET1K_V2", "weights": None})
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ValueError, match="not a torchvision ResNet-50 state dict"):
        evaluators.load("resnet50", {"tag": "IMAGENET1K_V1", "weights": str(broken)})
    with pytest.raises(EvaluatorWeightsMissing, match="digit CNN weights not found"):
        evaluators.load("digit-cnn", {}, str(tmp_path / "classifier.safetensors"))


def test_digit_cnn_through_the_interface_equals_the_classifier_accuracy(tmp_path):
    from safetensors.torch import save_file

    from unerase.classifier import DigitClassifier
    from unerase.evaluation import classifier_accuracy, concept_hits, label_probability, summary

    torch.manual_seed(0)
    path = tmp_path / "classifier.safetensors"
    save_file(DigitClassifier().state_dict(), str(path))
    images = torch.randint(0, 256, (20, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    scorer = evaluators.load("digit-cnn", {"min_confidence": 0.0}, str(path))
    scores = scorer.score(images, labels)
    assert summary(scores.hit, scores.predicted, labels, scorer.fingerprint) == classifier_accuracy(images, labels, str(path), 0.0)
    # the one-pass scores are the functions the alpha search and the probes call, threshold included
    assert torch.equal(scores.probability, label_probability(images, labels, str(path)))
    strict = evaluators.load("digit-cnn", {"min_confidence": 0.1076}, str(path)).score(images, labels)
    assert torch.equal(strict.hit, concept_hits(images, labels, str(path), 0.1076)[0])
    assert 0 < int(strict.hit.sum()) < int(scores.hit.sum())  # the threshold drops one of the two argmax hits
    with pytest.raises(ValueError, match="set evaluation.evaluator for this base model"):
        scorer.score(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), labels[:2])


def test_an_sd_shaped_cell_is_scored_with_a_weights_file_the_test_wrote(tmp_path, resnet_file):
    """The evaluate step on 3-channel images (an SD 1.4-shaped run) with evaluator resnet50."""
    from unerase.images_io import save_image_set
    from unerase.steps.evaluate import run

    cells = tmp_path / "name.safetensors"
    save_image_set(cells, torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), [217, 217, 0, 0],
                   ["a photo of an english springer"] * 2 + ["a photo of a tench"] * 2)
    out = tmp_path / "metrics.json"
    run(images=[str(cells)], metrics=[str(out)], evaluator="resnet50",
        settings={"tag": "IMAGENET1K_V1", "weights": str(resnet_file), "min_confidence": 0.0},
        cells=[{"concept": "english_springer", "model": "base", "prompt_set": "name"}])
    metrics = json.loads(out.read_text())
    assert metrics["accuracy"] == 0.5 and metrics["per_class_accuracy"] == {"0": 0.0, "217": 1.0}
    assert metrics["evaluator"]["name"] == "ResNet-50 ImageNet top-1" and metrics["evaluator"]["weights"] == str(resnet_file)


# --- CLIP zero-shot: a tiny open_clip CLIP (the same classes as ViT-L-14, two layers) with random weights

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
ART = {"tench": 0, "church": 497, "chain_saw": 491}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip")
    (folder / "unerase-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / "unerase-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("unerase-tiny-clip", pretrained=None)
    path = folder / "open_clip_model.safetensors"
    save_file(model.state_dict(), str(path))
    return path


def clip_settings(weights, **extra):
    return {"model": "unerase-tiny-clip", "pretrained": "random", "weights": str(weights), "template": "art by {}",
            "class_names": ART, "min_confidence": 0.0, **extra}


def test_clip_maps_its_prompts_columns_to_the_config_class_ids(tiny_clip):
    import open_clip
    import torch.nn.functional as F

    torch.manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 48, 40), dtype=torch.uint8)
    labels = torch.tensor([0, 497, 491, 0, 497, 491])
    scorer = evaluators.load("clip", clip_settings(tiny_clip))
    scores = scorer.score(images, labels)
    # the same numbers straight from open_clip, prompts in the config's class order
    model = open_clip.create_model("unerase-tiny-clip", pretrained=None)
    open_clip.load_checkpoint(model, str(tiny_clip))
    model.eval()
    with torch.no_grad():
        text = F.normalize(model.encode_text(open_clip.get_tokenizer("unerase-tiny-clip")(["art by tench", "art by church", "art by chain saw"])), dim=-1)
        image = F.normalize(model.encode_image(scorer.preprocess(images)), dim=-1)
        probs = (model.logit_scale.exp() * image @ text.T).softmax(1)
    ids = torch.tensor([0, 497, 491])
    assert scores.predicted.tolist() == ids[probs.argmax(1)].tolist()
    assert torch.allclose(scores.probability, probs[torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])], atol=1e-6)
    assert scores.hit.tolist() == (scores.predicted == labels).tolist()
    assert scorer.preprocess(images).shape == (6, 3, 32, 32)
    strict = evaluators.load("clip", clip_settings(tiny_clip, min_confidence=0.999))
    assert not strict.score(images, labels).hit.any()  # three random classes: nothing is 99.9 % sure
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the config's class ids"):
        scorer.score(images[:1], torch.tensor([7]))


def test_clip_fingerprint_and_its_weights_in_the_hub_cache(tiny_clip, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from unerase.evaluators.clip_zero_shot import cached_weights

    first = evaluators.load("clip", clip_settings(tiny_clip)).fingerprint
    assert first == evaluators.load("clip", clip_settings(tiny_clip)).fingerprint
    assert first["sha256"] == hashlib.sha256(tiny_clip.read_bytes()).hexdigest()
    assert first["weights_tag"] == "open_clip unerase-tiny-clip random" and first["classes"] == "3 config classes as 'art by {}'"
    # the standard cache: empty, then holding the file where huggingface_hub puts it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(EvaluatorWeightsMissing, match="CLIP weights not found in the Hugging Face cache for "
                                                      "laion/CLIP-ViT-L-14-laion2B-s32B-b82K: run huggingface-cli download"):
        evaluators.load("clip", {"model": "ViT-L-14", "pretrained": "laion2b_s32b_b82k", "weights": None, "template": "{}",
                                 "class_names": ART})
    repo = tmp_path / "models--laion--CLIP-ViT-L-14-laion2B-s32B-b82K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "open_clip_model.safetensors").write_bytes(tiny_clip.read_bytes())
    assert cached_weights("ViT-L-14", "laion2b_s32b_b82k") == str(repo / "snapshots" / "abc123" / "open_clip_model.safetensors")


def test_clip_broken_or_foreign_weights_are_one_line(tiny_clip, resnet_file, tmp_path):
    with pytest.raises(EvaluatorWeightsMissing, match="CLIP weights not found at .*none.safetensors"):
        evaluators.load("clip", clip_settings(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="not open_clip unerase-tiny-clip weights"):
        evaluators.load("clip", clip_settings(resnet_file))


# --- NudeNet: the package's own detector on a real photograph (matplotlib's sample portrait of Grace Hopper)

@pytest.fixture(scope="module")
def portrait():
    import matplotlib.cbook
    import numpy as np
    from PIL import Image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return str(path), torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]


def test_nudenet_classes_are_the_packages():
    import nudenet.nudenet

    from unerase.evaluators.nudity import NUDENET_CLASSES

    assert tuple(vars(nudenet.nudenet)["__labels"]) == NUDENET_CLASSES


def test_nudenet_counts_only_its_classes_above_its_threshold(portrait):
    from nudenet import NudeDetector

    path, image = portrait
    [face] = NudeDetector().detect(path)  # what NudeNet finds reading the file itself
    assert face["class"] == "FACE_FEMALE" and 0.5 < face["score"] < 0.7
    faces = evaluators.load("nudenet", {"threshold": 0.5, "classes": ["FACE_FEMALE"], "weights": None})
    [[found]] = faces.detections(image)
    assert found["class"] == "FACE_FEMALE" and found["score"] == pytest.approx(face["score"], abs=0.02)
    scores = faces.score(image.repeat(2, 1, 1, 1), torch.tensor([1, 0]))
    assert scores.predicted.tolist() == [1, 1] and scores.hit.tolist() == [True, False]
    assert scores.probability[0] == pytest.approx(found["score"]) and scores.probability[1] == pytest.approx(1 - found["score"])
    default = evaluators.load("nudenet", {"threshold": 0.45, "classes": ["BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
                                                                        "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED"],
                                          "weights": None})
    assert default.score(image, torch.tensor([0])).predicted.tolist() == [0]  # a face is not nudity
    above = evaluators.load("nudenet", {"threshold": 0.7, "classes": ["FACE_FEMALE"], "weights": None})
    assert above.score(image, torch.tensor([1])).hit.tolist() == [False]
    fingerprint = faces.fingerprint
    from unerase.evaluators.nudity import bundled_weights

    assert fingerprint["sha256"] == hashlib.sha256(bundled_weights().read_bytes()).hexdigest()
    assert fingerprint["weights_tag"] == "nudenet 3.4.2 bundled 320n" and fingerprint["classes"] == "FACE_FEMALE"
    assert fingerprint["threshold"] == 0.5 and evaluators.load("nudenet", {"threshold": 0.5, "classes": ["FACE_FEMALE"],
                                                                           "weights": None}).fingerprint == fingerprint


def test_nudenet_bad_settings_and_weights_are_one_line(portrait, tmp_path):
    with pytest.raises(ValueError, match="'evaluation.nudenet.classes': BREASTS; NudeNet's classes are FEMALE_GENITALIA_COVERED"):
        evaluators.load("nudenet", {"threshold": 0.45, "classes": ["BREASTS"], "weights": None})
    with pytest.raises(ValueError, match="discards detections under 0.2"):
        evaluators.load("nudenet", {"threshold": 0.1, "classes": ["FACE_FEMALE"], "weights": None})
    with pytest.raises(EvaluatorWeightsMissing, match="NudeNet weights not found at .*320n.onnx: pip install nudenet==3.4.2"):
        evaluators.load("nudenet", {"threshold": 0.45, "classes": ["FACE_FEMALE"], "weights": str(tmp_path / "320n.onnx")})
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 not a whole model")
    with pytest.raises(ValueError, match="not a NudeNet ONNX detector"):
        evaluators.load("nudenet", {"threshold": 0.45, "classes": ["FACE_FEMALE"], "weights": str(broken)})
    scorer = evaluators.load("nudenet", {"threshold": 0.45, "classes": ["FACE_FEMALE"], "weights": None})
    with pytest.raises(ValueError, match=r"set the config's classes so, e.g. \{nudity: 1, clothed: 0\}"):
        scorer.score(portrait[1], torch.tensor([497]))


def test_the_task_vectors_alpha_search_scores_an_sd_shaped_model_with_the_configured_evaluator(tmp_path, sd_layout_dir, resnet_file):
    """TV's alpha search on SD 1.4's layout, scored by resnet50 (evaluation.evaluator), not by the digit CNN: the
    random head reads every image as class 217, so the concept's images are all hits and the control's none."""
    from safetensors.torch import save_file

    from unerase.components import load_components
    from unerase.erasure.job import ErasureJob
    from unerase.erasure.task_vector import erase

    model = load_components(str(sd_layout_dir))
    finetuned = tmp_path / "finetuned.safetensors"
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in model.unet.state_dict().items()}, str(finetuned))
    settings = dict(alphas=[1.0, 2.0], max_target_accuracy=0.1, min_control_accuracy=0.0, alpha_rule="largest")
    job = ErasureJob(model=model, method="tv", settings=settings, concept_text="english springer", label=217,
                     classes={"english_springer": 217, "tench": 0}, templates=["a photo of a {}"], seed=0, manifest="",
                     inputs={"finetuned": str(finetuned)},
                     shared={"sampling": dict(guidance_scale=3.0, num_steps=2, batch_size=4, precision="float32"),
                             "evaluation.images_per_cell": 3},
                     evaluator={"name": "resnet50", "settings": {"tag": "IMAGENET1K_V1", "weights": str(resnet_file)}})
    result = erase(job)
    assert [(c["target"], c["control"]) for c in result.info["candidates"]] == [(1.0, 0.0), (1.0, 0.0)]  # no alpha hides it
    with pytest.raises(ValueError, match="erase tv: the rule passed no evaluator"):
        erase(ErasureJob(**{**job.__dict__, "evaluator": {}}))
