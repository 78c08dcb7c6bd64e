"""A CLIP tokenizer built offline from open_clip's bundled BPE vocabulary.

SD 1.4 ships its tokenizer as `vocab.json` + `merges.txt`; no machine here can download them, but
open_clip carries the same byte-level BPE (`bpe_simple_vocab_16e6.txt.gz`). We rebuild the two files
from it so that `transformers.CLIPTokenizer` gives the same ids as `open_clip.tokenize`.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from transformers import CLIPTokenizer

# 49152 BPE merges - 256 byte symbols - 2 special tokens, exactly as open_clip's SimpleTokenizer.
_NUM_MERGES = 49152 - 256 - 2
MODEL_MAX_LENGTH = 77  # SD pads every prompt to 77 tokens; the embedded model relies on it.


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte → printable-unicode table (identical to open_clip's and transformers')."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def open_clip_bpe_path() -> Path:
    import open_clip.tokenizer as oct

    return Path(oct.default_bpe())


def write_clip_tokenizer_files(out_dir: str | os.PathLike, bpe_path: str | os.PathLike | None = None) -> Path:
    """Write `vocab.json` and `merges.txt` equivalent to open_clip's vocabulary into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe_path = Path(bpe_path) if bpe_path else open_clip_bpe_path()
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab.extend("".join(m) for m in merges)
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return out


def build_clip_tokenizer(work_dir: str | os.PathLike) -> CLIPTokenizer:
    """A CLIPTokenizer configured as SD 1.4's: pad with end-of-text to 77 tokens."""
    files = write_clip_tokenizer_files(work_dir)
    # transformers 5's CLIPTokenizer takes the vocabulary and merges themselves; `from_pretrained`
    # on a folder holding the two files works as well (that is how a saved pipeline reloads it).
    vocab = json.loads((files / "vocab.json").read_text())
    merges = [tuple(m.split()) for m in (files / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH, pad_token="<|endoftext|>")
