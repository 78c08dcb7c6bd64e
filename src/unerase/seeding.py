"""Seeds derived from the run's `seed`: image i of a cell, an attack's k-th generator, a second stream of a method.

Each run seed owns a block of SEED_BLOCK derived seeds, so replicates (`seeds: [0, 1, 2]`) draw disjoint noise:
with `seed + i` replicate 1's images 0..98 reused replicate 0's noises 1..99, and on SD 1.4, where every replicate
shares the downloaded base model, its cells were nearly the same images (intervals too narrow). Seed 0 derives
exactly what `seed + i` did, so the default run is unchanged."""
from __future__ import annotations

SEED_BLOCK = 10_000_000  # more than any cell's images, any attack's generators, the safety grid's 1,000,000 + j
# The images erasure methods train on (replay, anchors, fine-tune targets) start here: disjoint from every evaluated
# cell's seeds (0 .. images - 1 per prompt set), so a method is not trained on the very (prompt, noise) pairs its control
# cell then draws (Selective Amnesia's replay and the conditional fine-tune's targets were the control cell's images).
TRAINING_IMAGES_START = 5_000_000


def derived(seed: int, offset: int = 0) -> int:
    """The `offset`-th seed of run seed `seed`."""
    if not 0 <= offset < SEED_BLOCK:
        raise ValueError(f"derived seed offset {offset}: outside 0..{SEED_BLOCK - 1}")
    return int(seed) * SEED_BLOCK + int(offset)


def image_seeds(seed: int, count: int, start: int = 0) -> list[int]:
    """Image i's initial-noise seed (i = start .. start + count - 1), the same in every model of the run (paired cells)."""
    return [derived(seed, start + i) for i in range(count)]
