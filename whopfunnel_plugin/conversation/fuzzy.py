"""Typo tolerance: a banded edit distance, cheap on any reply length."""

from __future__ import annotations


def threshold(length: int) -> int:
    """Typos allowed against a normalised target of this length."""
    if length < 4:
        return 0  # "no" vs "go", "yes" vs "yet": too short to guess
    return 1 if length < 8 else 2


def distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (adjacent transposition = 1), capped at limit + 1.

    Only the diagonal band |i - j| <= limit is computed and a row whose best cell is
    already over the limit stops the scan, so the cost is O(len * limit).
    """
    big = limit + 1
    if abs(len(a) - len(b)) > limit:
        return big
    if a == b:
        return 0
    # Rows are dicts holding only the band; a missing cell is "over the limit".
    before: dict[int, int] = {}
    prev = {j: j for j in range(min(len(b), limit) + 1)}
    for i in range(1, len(a) + 1):
        cur = {0: i} if i <= limit else {}
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            best = min(prev.get(j, big) + 1, cur.get(j - 1, big) + 1,
                       prev.get(j - 1, big) + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, before.get(j - 2, big) + 1)
            cur[j] = min(best, big)
        if min(cur.values(), default=big) > limit:
            return big
        before, prev = prev, cur
    return prev.get(len(b), big)
