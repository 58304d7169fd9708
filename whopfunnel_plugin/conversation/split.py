"""The draw of a split block: which branch a member goes down, from a seed.

Deterministic: the same seed and block always give the same branch (sticky, and
reproducible in tests and analytics), and over many seeds each branch gets its share
of the weights. SHA-256 of the seed and the block id, read as a fraction in [0, 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def draw(seed: str, block_id: str, weights: Sequence[float]) -> int:
    """The 0-based index of the branch drawn."""
    digest = hashlib.sha256(f"{seed}\x1f{block_id}".encode("utf-8", "surrogatepass")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if point < total:
            return index
    return len(weights) - 1
