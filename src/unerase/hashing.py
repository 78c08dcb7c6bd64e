"""sha256 of a file, streamed in 1 MiB chunks (SD 1.4's weights are GBs). Stdlib only: the report
and provenance environments import it without torch or the hub."""
from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
