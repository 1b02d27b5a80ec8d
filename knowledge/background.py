"""How near each entry's units come to questions about other entries: its level.

An entry with thirty aliases, or one about a broad topic, has a high best cosine with
almost any question; a new entry with one question per language does not. So a best
cosine means little on its own: what tells is how far above its usual level it is for
this entry. That level is measured on a background: the other entries' question-like
units (a fixed sample of them on a large base), each scored against the entry's units
of one kind (question-like, answer paragraphs, whole answers) as a question would be,
by the best one. Its mean and spread, per entry and kind, turn the entry's scores into
standard scores (``knowledge.ranking``: ``<model>:qz``, ``pz``, ``az``).

Computed from the stored vectors alone: no text is embedded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from knowledge.dense import ZERO, ZERO_POINT, integer_product
from knowledge.segment import KINDS, QUESTION, Dense

SAMPLE = 1024  # background rows on a base with more question-like units than this
CHUNK = 4096  # entry rows scored at a time (bounds the product's memory)
MIN_SPREAD = 0.01  # a background this narrow would blow up the standard score


@dataclass(frozen=True)
class Background:
    """A fixed set of question-like unit vectors (int8, as stored) and the base entry
    each belongs to."""

    rows: np.ndarray  # (rows, dim) int8
    scale: np.ndarray  # (rows,) float32
    owner: np.ndarray  # (rows,) int64 base position of each row's entry, ascending

    @classmethod
    def of(cls, dense: Dense, size: int = SAMPLE) -> Background:
        codes = np.asarray(dense.codes)
        rows = np.flatnonzero(codes % KINDS == QUESTION)
        if len(rows) > size:
            rows = np.sort(np.random.default_rng(0).choice(rows, size, replace=False))
        return cls(
            np.asarray(dense.rows[rows]), np.asarray(dense.scale[rows]), codes[rows] // KINDS
        )


@dataclass(frozen=True)
class EntryLevels:
    """Per entry and unit kind: the mean and spread of its best cosine over the
    background."""

    mean: np.ndarray  # (entries, KINDS) float32; NaN where an entry has no unit of a kind
    spread: np.ndarray  # (entries, KINDS) float32

    @classmethod
    def from_array(cls, stacked: np.ndarray) -> EntryLevels:
        """From ``to_array``'s (2, entries, KINDS) form (how a segment keeps them)."""
        return cls(stacked[0], stacked[1])

    def to_array(self) -> np.ndarray:
        return np.stack([self.mean, self.spread]).astype(np.float32)

    def at(self, positions: np.ndarray) -> EntryLevels:
        if len(positions) == len(self.mean):  # every entry (positions are ascending)
            return self
        return EntryLevels(self.mean[positions], self.spread[positions])

    @cached_property
    def _shift_factor(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, 1 / spread), both 0 where there is no level: a standard score of 0."""
        known = np.isfinite(self.mean) & np.isfinite(self.spread)
        shift = np.where(known, self.mean, 0.0).astype(np.float32)
        factor = np.where(known, 1.0 / np.where(known, self.spread, 1.0), 0.0)
        return shift, factor.astype(np.float32)

    def standardise(self, scores: np.ndarray) -> np.ndarray:
        """Scores (entries, KINDS) as standard scores on the entries' levels; 0 (no
        evidence either way) where an entry has no level of a kind."""
        shift, factor = self._shift_factor
        return (scores - shift) * factor


def entry_levels(
    dense: Dense,
    background: Background,
    excluded: np.ndarray,
    offset: int = 0,
    threads: int = 1,
) -> EntryLevels:
    """The levels of ``dense``'s entries (positions ``offset`` onwards), per unit kind, on
    the background rows whose owner is neither the entry itself nor ``excluded`` (a mask
    over base positions: entries removed or replaced since)."""
    n = len(dense.entry_start) - 1
    mean = np.full(n * KINDS, np.nan, np.float32)
    spread = np.full(n * KINDS, np.nan, np.float32)
    codes = np.asarray(dense.codes)
    owner = background.owner
    usable = ~excluded[owner] if len(excluded) else np.ones(len(owner), dtype=bool)
    if not len(codes) or not usable.any():
        return EntryLevels(mean.reshape(n, KINDS), spread.reshape(n, KINDS))
    product = integer_product(np.ascontiguousarray(background.rows.T), threads)
    start = 0
    while start < len(codes):
        stop = min(start + CHUNK, len(codes))
        while stop < len(codes) and codes[stop] == codes[stop - 1]:
            stop += 1  # whole (entry, kind) groups per chunk
        cells = codes[start:stop]
        firsts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        # Row scales before the max (they differ within a group); the background's after.
        left = np.asarray(dense.rows[start:stop]).view(np.uint8) ^ np.uint8(ZERO_POINT)
        (dots,) = product.run(None, {"question": left, "zero": ZERO})
        scaled = dots.astype(np.float32) * np.asarray(dense.scale[start:stop])[:, None]
        best = _group_max(scaled, firsts) * background.scale
        cell = cells[firsts]
        # Own units and excluded entries' do not count: ``owner`` ascending gives each
        # entry's own rows as one range.
        valid = np.broadcast_to(usable, best.shape).copy()
        entry = cell // KINDS + offset
        lo, hi = np.searchsorted(owner, entry), np.searchsorted(owner, entry, side="right")
        for g in np.flatnonzero(hi > lo):
            valid[g, lo[g] : hi[g]] = False
        count = valid.sum(axis=1)
        total = np.where(valid, best, 0.0).sum(axis=1)
        squares = np.where(valid, best * best, 0.0).sum(axis=1)
        has = count > 1
        m = total[has] / count[has]
        mean[cell[has]] = m
        variance = np.maximum(squares[has] / count[has] - m * m, 0.0)
        spread[cell[has]] = np.maximum(np.sqrt(variance), MIN_SPREAD)
        start = stop
    return EntryLevels(mean.reshape(n, KINDS), spread.reshape(n, KINDS))


def _group_max(matrix: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """The max over each group of consecutive rows starting at ``firsts``."""
    lengths = np.diff(np.r_[firsts, len(matrix)])
    best = matrix[firsts]
    for k in range(1, int(lengths.max())):
        longer = np.flatnonzero(lengths > k)  # few groups are long (an entry's aliases)
        best[longer] = np.maximum(best[longer], matrix[firsts[longer] + k])
    return best
