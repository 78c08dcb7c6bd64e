import open_clip
import pytest

PROMPTS = ["a photo of the digit seven", "Hello, World! café 123 <tag> don't", "", "an image of the number nine " * 20]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_equal_open_clip(tokenizer, prompt):
    ours = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    theirs = open_clip.tokenize([prompt])[0].tolist()
    n = sum(1 for t in theirs if t != 0)  # open_clip pads with 0, SD with end-of-text
    assert ours[:n] == theirs[:n]
    assert len(ours) == 77


def test_pads_with_end_of_text_to_77(tokenizer):
    ids = tokenizer("the digit one", padding="max_length", max_length=77).input_ids
    assert ids[0] == 49406 and ids[-1] == 49407
    assert ids[5:] == [49407] * 72  # bos, the, digit, one, eos, then eos padding
    assert tokenizer.model_max_length == 77


def test_roundtrip_through_save_pretrained(tokenizer, tmp_path):
    from transformers import CLIPTokenizer

    tokenizer.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    assert again("a handwritten three").input_ids == tokenizer("a handwritten three").input_ids
