"""The evaluators' interface: the registry, ResNet-50 on random weights of torchvision's architecture and CLIP
on random weights of a tiny open_clip model (label mapping, threshold, fingerprint), NudeNet's real detector
on a real photograph, the digit CNN through the interface, missing and broken weights in one line."""
import hashlib
import json
import shutil

import pytest
import torch
import yaml

from conftest import ROOT, TINY_CLIP
from unerase import evaluators
from unerase.evaluators.base import EvaluatorWeightsMissing


def test_registry_schema_and_configs_agree():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["evaluation"]["properties"]
    assert schema["evaluator"]["enum"] == list(evaluators.EVALUATORS)
    for config_file in ("config/config.yaml", "config/sd14.yaml", ".test/config.yaml"):
        assert yaml.safe_load((ROOT / config_file).read_text())["evaluation"]["evaluator"] in evaluators.EVALUATORS
    assert yaml.safe_load((ROOT / "config/sd14.yaml").read_text())["evaluation"]["evaluator"] == "resnet50"
    with pytest.raises(ValueError, match="unknown evaluator 'fid'; known: digit-cnn, resnet50, clip, nudenet, q16"):
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


def test_resnet50_sees_the_centre_crop_its_weights_were_evaluated_with(resnet_file):
    """torchvision's transform for the file (V1: shorter side 256, centre 224; ESD's imageclassify.py applies it), not the
    whole image squeezed to 224: a frame in the outer 32 of 512 pixels falls outside the crop."""
    framed = torch.zeros(1, 3, 512, 512, dtype=torch.uint8)
    framed[..., :32, :], framed[..., -32:, :], framed[..., :, :32], framed[..., :, -32:] = 255, 255, 255, 255
    scorer = evaluators.load("resnet50", {"tag": "IMAGENET1K_V1", "weights": str(resnet_file)})
    x = scorer.preprocess(framed)
    black = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert x.shape == (1, 3, 224, 224) and torch.allclose(x[0, :, 1:-1, 1:-1], black[:, None, None].expand(3, 222, 222), atol=1e-5)
    assert "shorter side 256, centre crop 224" in scorer.fingerprint["preprocess"]
    v2 = evaluators.load("resnet50", {"tag": "IMAGENET1K_V2", "weights": str(resnet_file)})
    assert "shorter side 232" in v2.fingerprint["preprocess"]


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

    from unerase.evaluators.open_clip_model import preprocess

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
        image = F.normalize(model.encode_image(preprocess(images, open_clip.get_model_preprocess_cfg(model))), dim=-1)
        probs = (model.logit_scale.exp() * image @ text.T).softmax(1)
    ids = torch.tensor([0, 497, 491])
    assert scores.predicted.tolist() == ids[probs.argmax(1)].tolist()
    assert torch.allclose(scores.probability, probs[torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])], atol=1e-6)
    assert scores.hit.tolist() == (scores.predicted == labels).tolist()
    assert preprocess(images, open_clip.get_model_preprocess_cfg(model)).shape == (6, 3, 32, 32)
    strict = evaluators.load("clip", clip_settings(tiny_clip, min_confidence=0.999))
    assert not strict.score(images, labels).hit.any()  # three random classes: nothing is 99.9 % sure
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the config's class ids"):
        scorer.score(images[:1], torch.tensor([7]))


def test_clip_fingerprint_and_its_weights_in_the_hub_cache(tiny_clip, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from unerase.evaluators.open_clip_model import cached_weights

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


# --- CLIP similarity (the TV paper's Erasure Score and control task) and Inception FID (SD 1.4's quality metric)

def similarity_block(weights, **extra):
    return {"model": "unerase-tiny-clip", "pretrained": "random", "weights": str(weights), "template": "a photo of {}", **extra}


def test_clip_similarity_is_the_cosine_of_each_image_and_its_class_prompt(tiny_clip, tmp_path):
    import open_clip
    import torch.nn.functional as F

    from unerase.evaluators import clip_similarity
    from unerase.evaluators.open_clip_model import preprocess

    torch.manual_seed(2)
    images = torch.randint(0, 256, (4, 3, 40, 48), dtype=torch.uint8)
    labels = torch.tensor([497, 0, 497, 491])
    sim = clip_similarity.load(similarity_block(tiny_clip), ART)
    got = sim.similarity(images, labels)
    model = open_clip.create_model("unerase-tiny-clip", pretrained=None)
    open_clip.load_checkpoint(model, str(tiny_clip))
    model.eval()
    with torch.no_grad():
        text = F.normalize(model.encode_text(open_clip.get_tokenizer("unerase-tiny-clip")(
            ["a photo of church", "a photo of tench", "a photo of church", "a photo of chain saw"])), dim=-1)
        image = F.normalize(model.encode_image(preprocess(images, open_clip.get_model_preprocess_cfg(model))), dim=-1)
    assert torch.allclose(got, (image * text).sum(1), atol=1e-6)  # each image against its own class's prompt
    assert sim.fingerprint == clip_similarity.load(similarity_block(tiny_clip), ART).fingerprint
    assert sim.fingerprint["sha256"] == hashlib.sha256(tiny_clip.read_bytes()).hexdigest()
    assert sim.fingerprint["classes"] == "3 config classes as 'a photo of {}'"
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the config's class ids"):
        sim.similarity(images[:1], torch.tensor([7]))
    with pytest.raises(EvaluatorWeightsMissing, match="CLIP weights not found at .*none.safetensors: set evaluation.erasure_score.clip.weights"):
        clip_similarity.load(similarity_block(tmp_path / "none.safetensors"), ART)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random weights of pytorch-fid's Inception-v3 (torchvision's InceptionV3 with 1008 classes and no aux head has
    the same tensors as the FID network; only its pooling differs)."""
    from pytorch_fid.inception import _inception_v3

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(_inception_v3(num_classes=1008, aux_logits=False, weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Three RGB images of different sizes, as a reference set of photographs."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 40), (40, 40), (56, 48)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_inception_reference_statistics_are_pytorch_fids_own(inception_file, photo_folder, tmp_path):
    """A folder of images gives the statistics pytorch-fid computes from the same files with the same network; its
    --save-stats .npz gives them back; broken or foreign files are one line."""
    import numpy as np
    from pytorch_fid.fid_score import calculate_activation_statistics

    from unerase.evaluators import inception_fid

    features = inception_fid.load({"weights": str(inception_file)})
    assert features.fingerprint["weights_tag"] == "custom Inception-v3 weights (pt_inception-random.pth)"  # not pytorch-fid's file
    mu, sigma, described = features.reference_statistics(str(photo_folder))
    assert described == f"3 images in {photo_folder}"
    files = sorted(str(p) for p in photo_folder.glob("*.png"))
    ref_mu, ref_sigma = calculate_activation_statistics(files, features.net, batch_size=1, dims=2048, device="cpu", num_workers=0)
    assert np.allclose(mu, ref_mu, atol=1e-5) and np.allclose(sigma, ref_sigma, atol=1e-5)
    stats = tmp_path / "reference.npz"
    np.savez(stats, mu=ref_mu, sigma=ref_sigma)
    again, _, described = features.reference_statistics(str(stats))
    assert np.array_equal(again, ref_mu) and described.startswith("pytorch-fid statistics reference.npz (sha256 ")
    np.savez(tmp_path / "small.npz", mu=ref_mu[:64], sigma=ref_sigma[:64, :64])
    with pytest.raises(ValueError, match=r"small.npz: statistics of shape mu \(64,\), sigma \(64, 64\)"):
        features.reference_statistics(str(tmp_path / "small.npz"))
    with pytest.raises(FileNotFoundError, match="evaluation.fid.reference: .*nowhere is neither a folder of images"):
        features.reference_statistics(str(tmp_path / "nowhere"))
    with pytest.raises(EvaluatorWeightsMissing, match=r"Inception-v3 \(FID\) weights not found at .*none.pth: download pt_inception-2015-12-05"):
        inception_fid.load({"weights": str(tmp_path / "none.pth")})
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ValueError, match="not pytorch-fid's Inception-v3 weights"):
        inception_fid.load({"weights": str(broken)})


def test_an_sd_shaped_audit_gets_its_erasure_score_by_clip_and_control_fid_by_inception(tmp_path, resnet_file, tiny_clip,
                                                                                         inception_file, photo_folder):
    """The evaluate step on SD-shaped cells with every evaluator weights file written by the test: ResNet-50 scores,
    the TV paper's CLIP similarity per cell and per learned token, Inception FID on the control cell; the tables'
    Erasure Score then reads the CLIP similarity."""
    import numpy as np

    from unerase.evaluators import clip_similarity, inception_fid
    from unerase.evaluators.inception_fid import read_rgb
    from unerase.fid import fid
    from unerase.images_io import save_image_set
    from unerase.steps.evaluate import run
    from unerase.steps.tables import erasure_scores

    torch.manual_seed(3)
    classes = {"church": 497, "tench": 0, "chain_saw": 491}
    sets = {"name": ([497] * 4, ["a photo of a church"] * 4),
            "diverse-inversion": ([497] * 4, ["a photo of a <church-di>_000"] * 2 + ["a photo of a <church-di>_001"] * 2),
            "control": ([0, 491, 0, 491], ["a photo of a tench", "a photo of a chain saw"] * 2)}
    paths, outs, cells, images = [], [], [], {}
    for prompt_set, (labels, prompts) in sets.items():
        images[prompt_set] = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
        paths.append(str(tmp_path / f"{prompt_set}.safetensors"))
        save_image_set(paths[-1], images[prompt_set], labels, prompts)
        outs.append(str(tmp_path / f"{prompt_set}.json"))
        cells.append({"concept": "church", "model": "base", "prompt_set": prompt_set})
    run(images=paths, metrics=outs, evaluator="resnet50", settings={"tag": "IMAGENET1K_V1", "weights": str(resnet_file), "min_confidence": 0.0},
        cells=cells, classes=classes, erasure_score={"score": "clip-similarity", "clip": similarity_block(tiny_clip)},
        fid={"features": "inception", "weights": str(inception_file), "reference": str(photo_folder)})
    metrics = {c["prompt_set"]: json.loads(open(o).read()) for c, o in zip(cells, outs)}
    sim = clip_similarity.load(similarity_block(tiny_clip), classes)
    expected = sim.similarity(images["diverse-inversion"], torch.tensor(sets["diverse-inversion"][0]))
    assert metrics["diverse-inversion"]["clip_similarity_by_token"] == pytest.approx(
        {"<church-di>_000": float(expected[:2].mean()), "<church-di>_001": float(expected[2:].mean())}, abs=1e-6)
    assert metrics["name"]["similarity_evaluator"]["sha256"] == hashlib.sha256(tiny_clip.read_bytes()).hexdigest()
    assert metrics["name"]["evaluator"]["name"] == "ResNet-50 ImageNet top-1"
    # FID only where erasure should leave the model alone, against the reference photographs
    assert "fid" not in metrics["name"] and metrics["control"]["fid_reference"] == f"3 images in {photo_folder}"
    features = inception_fid.load({"weights": str(inception_file)})
    reference = np.concatenate([features.features(read_rgb(p)) for p in sorted(photo_folder.glob("*.png"))])
    assert metrics["control"]["fid"] == pytest.approx(fid(features.features(images["control"]), reference), rel=1e-6)
    assert metrics["control"]["fid_features"].startswith("Inception-v3 pool3 (pytorch-fid 0.3.0)")
    es = erasure_scores(list(metrics.values()), "clip-similarity").iloc[0]
    assert es["erasure_score"] == pytest.approx(max(metrics["name"]["mean_clip_similarity"], *expected.reshape(2, 2).mean(1).tolist()), abs=1e-6)
    assert es["scorer"] == "CLIP similarity unerase-tiny-clip" and es["embeddings"] == 2
    by_probability = erasure_scores(list(metrics.values())).iloc[0]
    assert by_probability["erasure_score"] == pytest.approx(max(metrics["name"]["mean_label_probability"],
                                                                *metrics["diverse-inversion"]["label_probability_by_token"].values()))
    with pytest.raises(ValueError, match="church/base/name: its metrics have no mean_clip_similarity; the Erasure Score by clip-similarity needs"):
        erasure_scores([{k: v for k, v in m.items() if k != "mean_clip_similarity"} for m in metrics.values()], "clip-similarity")
    with pytest.raises(ValueError, match="evaluation.fid.features: evaluator 'ResNet-50 ImageNet top-1' has no reference set"):
        run(images=paths[:1], metrics=[str(tmp_path / "x.json")], evaluator="resnet50", cells=cells[:1],
            settings={"tag": "IMAGENET1K_V1", "weights": str(resnet_file)}, fid={"features": "evaluator"})


def test_tv_es_picks_alpha_by_the_clip_similarity_erasure_score_on_an_sd_shaped_model(tmp_path, sd_layout_dir, resnet_file, tiny_clip):
    """tv-es with evaluation.erasure_score.score clip-similarity: every alpha's Erasure Score is the highest mean CLIP
    similarity over the name's images and each Diverse-Inversion embedding's — the numbers the CLIP model gives for the
    images that alpha's model draws."""
    from safetensors.torch import save_file

    from unerase.components import load_components
    from unerase.erasure.job import ErasureJob
    from unerase.erasure.task_vector import erase, negate, task_vector
    from unerase.evaluators import clip_similarity
    from unerase.inversion import load_token_set
    from unerase.prompts import build_prompts
    from unerase.sampling import generate

    model = load_components(str(sd_layout_dir))
    base = {k: v.detach().clone() for k, v in model.unet.state_dict().items()}
    finetuned = tmp_path / "finetuned.safetensors"
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in base.items()}, str(finetuned))
    torch.manual_seed(4)
    tokens = tmp_path / "diverse.safetensors"
    save_file({"<di>_000": torch.randn(1, 32), "<di>_003": torch.randn(1, 32)}, str(tokens))
    classes = {"church": 497, "tench": 0, "chain_saw": 491}
    sampling = dict(guidance_scale=3.0, num_steps=2, batch_size=4, precision="float32")
    es_block = {"score": "clip-similarity", "clip": similarity_block(tiny_clip)}
    # the control task's prompts: "a church at night" names the erased concept and is left out, as in its table
    control_task = {"prompts": ["a photo of a tench", "a church at night", "a chain saw"],
                    "clip": {k: v for k, v in es_block["clip"].items() if k != "template"}}
    job = ErasureJob(model=model, method="tv-es", settings={"max_erasure_score": -1.0, "min_control_similarity": None}, concept_text="church",
                     label=497, classes=classes, templates=["a photo of a {}"], seed=0, manifest="",
                     inputs={"finetuned": str(finetuned), "diverse_inversion": str(tokens)},
                     shared={"sampling": sampling, "evaluation.images_per_cell": 2, "erasure.task_vector.alphas": [1.0, 2.0],
                             "erasure.task_vector.min_control_accuracy": 0.0, "evaluation.erasure_score": es_block,
                             "evaluation.control_task": control_task},
                     evaluator={"name": "resnet50", "settings": {"tag": "IMAGENET1K_V1", "weights": str(resnet_file)}})
    result = erase(job)
    assert result.info["erasure_score_by"] == "clip-similarity" and [c["alpha"] for c in result.info["candidates"]] == [1.0, 2.0]
    assert result.info["control_task_prompts"] == ["a chain saw", "a photo of a tench"]
    # alpha 2 by hand: its model's images of the name and of each token, against "a photo of church"
    sim = clip_similarity.load(es_block["clip"], classes)
    check = load_components(str(sd_layout_dir))
    check.unet.load_state_dict(negate(base, task_vector(base, {k: v + 0.01 if v.is_floating_point() else v for k, v in base.items()}), 2.0),
                               strict=False)
    names = load_token_set(check, str(tokens), as_token="<church-diverse-inversion>")
    means = []
    for prompt_set, learned in (("name", None), ("diverse-inversion", names)):
        prompts, labels = build_prompts(prompt_set, ["a photo of a {}"], "church", 497, classes, 2, learned)
        x = generate(check, prompts, [0, 1], 3.0, 2, 4)
        s = sim.similarity(x, torch.tensor(labels))
        means += [float(s.mean())] if learned is None else [float(s[[i for i, p in enumerate(prompts) if t in p]].mean()) for t in names]
    assert result.info["candidates"][1]["erasure_score"] == pytest.approx(max(means), abs=1e-5)
    # alpha 2's control task: the kept prompts in turn from the cells' seeds, each image against its own prompt
    control_prompts = ["a photo of a tench", "a chain saw"]
    x = generate(check, control_prompts, [0, 1], 3.0, 2, 4)
    expected = clip_similarity.load_prompt_similarity(control_task["clip"]).similarity(x, control_prompts).mean()
    assert result.info["candidates"][1]["control_similarity"] == pytest.approx(float(expected), abs=1e-5)
    assert result.info["candidates"][0]["control_similarity"] != pytest.approx(float(expected), abs=1e-5)  # alpha 1 draws others
    # no alpha reaches an Erasure Score of -1: the lowest one keeping control is chosen
    assert result.info["alpha"] == min(result.info["candidates"], key=lambda c: (c["erasure_score"], c["alpha"]))["alpha"]


# --- Q16: CLIP image embeddings against two learned prompts, the prompts read as numpy only

def q16_settings(clip_weights, prompts, **extra):
    return {"prompts": str(prompts), "clip": {"model": "unerase-tiny-clip", "pretrained": "random", "weights": str(clip_weights)},
            "min_confidence": 0.0, **extra}


def test_q16_takes_the_argmax_of_its_two_prompts_read_from_a_numpy_pickle(tiny_clip, tmp_path):
    import pickle

    import numpy as np

    from unerase.evaluators.open_clip_model import encode_images, load_model

    torch.manual_seed(5)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    model = load_model(str(tiny_clip), "unerase-tiny-clip")
    embedded = encode_images(model, images)
    # prompts: row 1 ("inappropriate") is the first image's own direction, row 0 its opposite
    prompts = torch.stack([-embedded[0], embedded[0]]).numpy() * 3.0
    path = tmp_path / "prompts.p"
    path.write_bytes(pickle.dumps(prompts, protocol=2))  # Q16's file is such a pickle
    q16 = evaluators.load("q16", q16_settings(tiny_clip, path))
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    scores = q16.score(images, labels)
    cosine = embedded @ torch.nn.functional.normalize(torch.from_numpy(prompts), dim=-1).T
    probs = (100 * cosine).softmax(1)
    assert scores.predicted.tolist() == probs.argmax(1).tolist() and scores.predicted[0] == 1
    assert torch.allclose(scores.probability, probs[torch.arange(6), labels], atol=1e-5)
    assert scores.hit.tolist() == (scores.predicted == labels).tolist()
    assert q16.fingerprint["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and q16.fingerprint["classes"] == "0 appropriate, 1 inappropriate"
    np.save(tmp_path / "prompts.npy", prompts)
    assert torch.equal(evaluators.load("q16", q16_settings(tiny_clip, tmp_path / "prompts.npy")).score(images, labels).predicted, scores.predicted)
    with pytest.raises(ValueError, match=r"Q16 labels an image 1 \(inappropriate\) or 0"):
        q16.score(images[:1], torch.tensor([497]))


class _Shell:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_q16_refuses_a_pickle_of_anything_but_an_array_and_names_bad_files(tiny_clip, tmp_path):
    import pickle

    import numpy as np

    evil = tmp_path / "evil.p"
    evil.write_bytes(pickle.dumps(_Shell()))
    with pytest.raises(ValueError, match=r"evil.p: not Q16's learned prompts \(UnpicklingError: refused: the file asks for (posix|os).system"):
        evaluators.load("q16", q16_settings(tiny_clip, evil))
    wide = tmp_path / "wide.p"
    wide.write_bytes(pickle.dumps(np.zeros((2, 768), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"wide.p: prompts of width 768, but unerase-tiny-clip's image embeddings have 16"):
        evaluators.load("q16", q16_settings(tiny_clip, wide))
    three = tmp_path / "three.p"
    three.write_bytes(pickle.dumps(np.zeros((3, 16), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"three.p: Q16's prompts are 2 embeddings .* not shape \(3, 16\)"):
        evaluators.load("q16", q16_settings(tiny_clip, three))
    with pytest.raises(EvaluatorWeightsMissing, match="Q16 prompts weights not found at .*none.p: download prompts.p"):
        evaluators.load("q16", q16_settings(tiny_clip, tmp_path / "none.p"))
    with pytest.raises(ValueError, match="config key 'evaluation.q16.prompts' is not set"):
        evaluators.load("q16", {"prompts": None, "clip": {}})


def test_q16_refuses_crafted_arrays_that_numpy_itself_would_trust(tiny_clip, tmp_path):
    """numpy's dtype restoration keeps the flags a file gives it: an object field over raw bytes reads attacker-chosen
    pointers. The stand-ins build only float arrays of a plain shape from exactly their bytes."""
    import pickle

    import numpy as np

    for name, bad in (("object", np.zeros(2, dtype=[("a", "O")])), ("ints", np.zeros((2, 16), dtype=np.int64)),
                      ("huge", np.zeros((300, 300), dtype=np.float32)), ("dict", {"prompts": 1})):
        path = tmp_path / f"{name}.p"
        path.write_bytes(pickle.dumps(bad, protocol=2))
        with pytest.raises(ValueError, match=rf"{name}.p: not Q16's learned prompts \(UnpicklingError: refused"):
            evaluators.load("q16", q16_settings(tiny_clip, path))
    from unerase.evaluators.q16 import load_prompts

    for protocol in (2, 3, 4, 5):  # numpy's own pickles of a float array, whatever the protocol, come back exactly
        prompts = np.random.default_rng(protocol).standard_normal((2, 16)).astype(np.float32)
        (tmp_path / "ok.p").write_bytes(pickle.dumps(prompts, protocol=protocol))
        assert torch.equal(load_prompts(str(tmp_path / "ok.p")), torch.from_numpy(prompts))


def test_openai_clip_weights_get_quick_gelu(tiny_clip, monkeypatch):
    """OpenAI's CLIP (Q16's ViT-L/14) was trained with QuickGELU; open_clip's architecture config alone builds GELU and
    the tensors load either way, so the pretrained tag must decide."""
    import open_clip

    from unerase.evaluators import open_clip_model

    assert open_clip_model.uses_quick_gelu("ViT-L-14", "openai") and not open_clip_model.uses_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    acts = lambda net: {type(m).__name__ for m in net.modules() if "GELU" in type(m).__name__}  # noqa: E731
    assert acts(open_clip_model.load_model(str(tiny_clip), "unerase-tiny-clip", "random")) == {"GELU"}
    monkeypatch.setattr(open_clip_model, "uses_quick_gelu", lambda model, pretrained: True)
    assert acts(open_clip_model.load_model(str(tiny_clip), "unerase-tiny-clip", "openai")) == {"QuickGELU"}
    assert isinstance(open_clip.model.QuickGELU(), torch.nn.Module)


@pytest.fixture(scope="module")
def hub_resnet_folder(tmp_path_factory):
    """microsoft/resnet-50's folder layout (config.json, model.safetensors, preprocessor_config.json as the hub has them)
    with random weights of a small ResNet of transformers' class over ImageNet's 1,000 classes, whose head prefers 217."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], num_labels=1000))
    with torch.no_grad():
        model.classifier[1].weight.zero_()
        model.classifier[1].bias.zero_()
        model.classifier[1].bias[217] = 10.0
    folder = tmp_path_factory.mktemp("microsoft-resnet-50")
    model.save_pretrained(folder, safe_serialization=True)
    # microsoft/resnet-50's preprocessor_config.json
    ConvNextImageProcessor(crop_pct=0.875, size={"shortest_edge": 224}, resample=3, image_mean=[0.485, 0.456, 0.406],
                           image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def test_microsoft_resnet50_scores_through_its_own_processor_and_records_which(hub_resnet_folder):
    settings = {"tag": "microsoft/resnet-50", "weights": str(hub_resnet_folder), "min_confidence": 0.9}
    scorer = evaluators.load("resnet50", settings)
    images = torch.randint(0, 256, (3, 3, 300, 260), dtype=torch.uint8)
    scores = scorer.score(images, torch.tensor([217, 0, 217]))
    assert scores.predicted.tolist() == [217, 217, 217] and scores.hit.tolist() == [True, False, True]
    # the same numbers as transformers' own model and processor, called as UnlearnDiffAtk calls them
    from transformers import AutoImageProcessor, ResNetForImageClassification

    processor = AutoImageProcessor.from_pretrained(hub_resnet_folder, backend="pil")  # transformers 4's ConvNextImageProcessor
    model = ResNetForImageClassification.from_pretrained(hub_resnet_folder).eval()
    with torch.no_grad():
        want = model(**processor(images=[img.permute(1, 2, 0).numpy() for img in images], return_tensors="pt")).logits.softmax(1)
    assert torch.allclose(scores.probability, want[torch.arange(3), torch.tensor([217, 0, 217])], atol=1e-5)
    assert scorer.preprocess(images).shape == (3, 3, 224, 224)
    fp = scorer.fingerprint
    assert fp == evaluators.load("resnet50", settings).fingerprint
    assert fp["weights_tag"] == "microsoft/resnet-50 (transformers)" and fp["threshold"] == 0.9
    assert fp["sha256"] == hashlib.sha256((hub_resnet_folder / "model.safetensors").read_bytes()).hexdigest()
    assert "shortest edge 224, crop_pct 0.875" in fp["preprocess"] and fp["preprocess"].startswith("ConvNextImageProcessorPil")


def test_microsoft_resnet50_missing_or_broken_folder_is_one_line(hub_resnet_folder, tmp_path, monkeypatch):
    with pytest.raises(EvaluatorWeightsMissing, match=r"microsoft/resnet-50 weights not found at .*none/config\.json: .*huggingface-cli download"):
        evaluators.load("resnet50", {"tag": "microsoft/resnet-50", "weights": str(tmp_path / "none")})
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # the standard cache, empty
    with pytest.raises(EvaluatorWeightsMissing, match="microsoft/resnet-50 weights not found"):
        evaluators.load("resnet50", {"tag": "microsoft/resnet-50", "weights": None})
    # found in the Hugging Face cache as `huggingface-cli download microsoft/resnet-50` leaves it
    repo = tmp_path / "hf-cache" / "models--microsoft--resnet-50"
    shutil.copytree(hub_resnet_folder, repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    assert evaluators.load("resnet50", {"tag": "microsoft/resnet-50", "weights": None}).fingerprint["weights"] == \
        str(repo / "snapshots" / "0123abc" / "model.safetensors")
    broken = tmp_path / "broken"
    shutil.copytree(hub_resnet_folder, broken)
    (broken / "model.safetensors").write_bytes((hub_resnet_folder / "model.safetensors").read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=r"broken: not a transformers ResNet-50 folder"):
        evaluators.load("resnet50", {"tag": "microsoft/resnet-50", "weights": str(broken)})
    with pytest.raises(ValueError, match="is not one of IMAGENET1K_V1, IMAGENET1K_V2, microsoft/resnet-50"):
        evaluators.load("resnet50", {"tag": "resnet-50", "weights": None})


def test_nudenet_runs_a_fixed_size_detector_at_its_own_size(monkeypatch, tmp_path):
    """NudeDetector feeds 320 px unless told; a detector file of another fixed input size (UnlearnDiffAtk's vendored
    best.onnx) is run at its own size, recorded in the fingerprint. The bundled 320n.onnx has a dynamic size: 320."""
    import nudenet

    made = []

    class FixedSize:
        def __init__(self, model_path=None, providers=None, inference_resolution=320):
            made.append(inference_resolution)
            self.input_width = self.input_height = inference_resolution
            self.onnx_session = type("S", (), {"get_inputs": lambda self: [type("I", (), {"shape": [1, 3, 640, 640]})()]})()

    weights = tmp_path / "best.onnx"
    weights.write_bytes(b"not read by the stand-in")
    monkeypatch.setattr(nudenet, "NudeDetector", FixedSize)
    scorer = evaluators.load("nudenet", {"threshold": 0.5, "classes": ["FEMALE_BREAST_EXPOSED"], "weights": str(weights)})
    assert made == [320, 640] and scorer.fingerprint["resolution"] == 640
    monkeypatch.undo()
    assert evaluators.load("nudenet", {"threshold": 0.45, "classes": ["FEMALE_BREAST_EXPOSED"]}).fingerprint["resolution"] == 320
