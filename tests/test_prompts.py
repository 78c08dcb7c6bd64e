from collections import Counter

from unerase.prompts import build_prompts

CLASSES = {"zero": 0, "one": 1, "two": 2, "three": 3}
TEMPLATES = ["the digit {}", "{}"]


def test_control_set_covers_every_other_class_evenly_in_label_order():
    shuffled = dict(reversed(list(CLASSES.items())))  # config order must not matter
    prompts, labels = build_prompts("control", TEMPLATES, "zero", 0, shuffled, 7, None)
    assert prompts[:3] == ["the digit one", "the digit two", "the digit three"] and prompts[3] == "one"
    assert 0 not in labels and Counter(labels) == {1: 3, 2: 2, 3: 2}
    assert build_prompts("control", TEMPLATES, "zero", 0, CLASSES, 7, None) == (prompts, labels)


def test_control_prompts_name_multi_word_classes_in_words_under_their_own_labels():
    """SD 1.4's classes (config/sd14.yaml) are ImageNet names with underscores and non-contiguous labels: the control
    prompts read "garbage truck", as the concept's own text and the erasure jobs' other classes do, and each image keeps
    its class's ImageNet index."""
    imagenette = {"tench": 0, "church": 497, "garbage_truck": 569, "golf_ball": 574}
    prompts, labels = build_prompts("control", ["a photo of a {}"], "church", 497, imagenette, 4, None)
    assert prompts == ["a photo of a tench", "a photo of a garbage truck", "a photo of a golf ball", "a photo of a tench"]
    assert labels == [0, 569, 574, 0]


def test_name_and_inversion_sets_use_the_concept_label():
    prompts, labels = build_prompts("name", TEMPLATES, "three", 3, CLASSES, 3, None)
    assert prompts == ["the digit three", "three", "the digit three"] and labels == [3, 3, 3]
    prompts, _ = build_prompts("inversion", TEMPLATES, "three", 3, CLASSES, 2, "<t> <t>_1")
    assert prompts == ["the digit <t> <t>_1", "<t> <t>_1"]
