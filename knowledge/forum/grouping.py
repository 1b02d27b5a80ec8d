"""The same question asked in different words or languages, grouped.

A question is represented by two multilingual encoders side by side (e5 and USE, each
weighted by how spread its cosines are, so the dot product of two representations is
their summed standardised similarity: ``represent``). Groups are built by average
linkage: two groups merge while the mean similarity between their questions is at least
``CUT`` (a group holds the sum of its vectors, so that mean is one dot product). Average
linkage over everything would need every pair; instead the questions are first split
into canopies, loose greedy groups at a low threshold, bounded in size, and linked
within each. Candidates of earlier mining enter as finished groups (their sums), so a
later export's questions join the candidates they repeat; two earlier candidates never
merge.

Average linkage was chosen over greedy centroid grouping (what the TAs' queue uses) on the
tuning half of ``bench/eval/mining_groups.yaml``; ``bench.mining`` reports the held-out half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from knowledge import embedders

MODELS = (embedders.E5Small.name, embedders.MultilingualUSE.name)
# Spread (standard deviation) of each encoder's cosine between unrelated forum questions
# (tuning half): e5's cosines crowd near 0.84, USE's spread widely; each is weighted by
# its inverse so both count alike.
SPREAD = (0.029, 0.093)
CUT = 0.76  # mean similarity of two groups needed to merge them (tuning half)
CANOPY = 0.70  # loose first pass (unrelated questions average 0.69); linked within
MAX_CANOPY = 800  # a larger canopy is split again at a stricter threshold


def represent(texts: list[str]) -> np.ndarray:
    """Unit vectors whose dot product is the weighted sum of the encoders' cosines."""
    weights = [1.0 / s for s in SPREAD]
    parts = [
        embedders.get(model).encode_queries(texts) * np.sqrt(w / sum(weights))
        for model, w in zip(MODELS, weights, strict=True)
    ]
    return np.hstack(parts).astype(np.float32)


@dataclass
class Group:
    vector_sum: np.ndarray
    count: int  # vectors in the sum
    members: list[int] = field(default_factory=list)  # rows of the new questions
    candidate_id: int | None = None  # the earlier candidate it continues


@dataclass
class Seed:
    candidate_id: int
    vector_sum: np.ndarray
    count: int


def group_questions(
    vectors: np.ndarray,
    seeds: Sequence[Seed] = (),
    cut: float = CUT,
    canopy: float = CANOPY,
    max_canopy: int = MAX_CANOPY,
) -> list[Group]:
    """Groups of the rows of ``vectors`` (from ``represent``), after ``seeds``."""
    groups = [Group(s.vector_sum.astype(np.float32), s.count, [], s.candidate_id) for s in seeds]
    groups += [Group(v.copy(), 1, [row]) for row, v in enumerate(vectors)]
    out: list[Group] = []
    for members in _canopies(groups, canopy, max_canopy):
        out += _link([groups[i] for i in members], cut)
    return out


def _unit_rows(sums: np.ndarray) -> np.ndarray:
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def _canopies(groups: list[Group], threshold: float, max_size: int) -> list[list[int]]:
    """Greedy centroid grouping of ``groups`` at a loose threshold; a canopy larger than
    ``max_size`` is split again at a stricter one."""
    if not groups:
        return []
    sums = np.stack([g.vector_sum for g in groups])
    return _split(_unit_rows(sums), list(range(len(groups))), threshold, max_size)


def _split(units: np.ndarray, rows: list[int], threshold: float, max_size: int) -> list[list[int]]:
    centroids = np.zeros((len(rows), units.shape[1]), dtype=np.float32)
    totals = np.zeros_like(centroids)
    canopies: list[list[int]] = []
    for row in rows:
        n = len(canopies)
        if n:
            sims = centroids[:n] @ units[row]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                canopies[best].append(row)
                totals[best] += units[row]
                centroids[best] = totals[best] / max(float(np.linalg.norm(totals[best])), 1e-12)
                continue
        canopies.append([row])
        totals[n] = units[row]
        centroids[n] = units[row]
    out: list[list[int]] = []
    for members in canopies:
        if len(members) > max_size and threshold < 0.99:
            out += _split(units, members, min(0.99, threshold + 0.05), max_size)
        else:
            out.append(members)
    return out


def _link(groups: list[Group], cut: float) -> list[Group]:
    """Average linkage within one canopy: merge the closest pair while their mean
    similarity reaches ``cut``; two earlier candidates never merge."""
    if len(groups) < 2:
        return groups
    sums = np.stack([g.vector_sum for g in groups]).astype(np.float64)
    counts = np.array([g.count for g in groups], dtype=np.float64)
    sim = (sums @ sums.T) / np.outer(counts, counts)  # mean pairwise similarity
    seeded = np.array([g.candidate_id is not None for g in groups])
    alive = np.ones(len(groups), dtype=bool)
    blocked = np.outer(seeded, seeded) | np.eye(len(groups), dtype=bool)
    sim[blocked] = -np.inf
    while True:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, len(groups))
        if sim[i, j] < cut:
            break
        if seeded[j] and not seeded[i]:
            i, j = j, i  # keep the earlier candidate
        a, b = groups[i], groups[j]
        a.vector_sum = a.vector_sum + b.vector_sum
        a.members += b.members
        # Lance-Williams for average linkage: the merged group's mean similarity to k.
        row = (counts[i] * sim[i] + counts[j] * sim[j]) / (counts[i] + counts[j])
        counts[i] += counts[j]
        a.count = int(counts[i])
        seeded[i] = seeded[i] or seeded[j]
        alive[j] = False
        sim[i, :] = row
        sim[:, i] = row
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        sim[i, i] = -np.inf
        if seeded[i]:
            sim[i, seeded] = -np.inf
            sim[seeded, i] = -np.inf
    return [g for g, keep in zip(groups, alive, strict=True) if keep]
