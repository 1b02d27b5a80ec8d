"""int8 unit scoring against the exact float32 cosines; per-entry best unit scores."""

from __future__ import annotations

import numpy as np

from knowledge.dense import Int8Rows, quantize_rows
from knowledge.index import EMPTY, KINDS, SHORT, Grouping


def _unit_rows(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_cosines_stay_within_a_small_error_of_float32() -> None:
    rows = _unit_rows(5000)
    rng = np.random.default_rng(1)
    scorer = Int8Rows(rows)
    for i in (0, 17, 4999):
        query = rows[i] + 0.05 * rng.standard_normal(384).astype(np.float32)
        query /= np.linalg.norm(query)
        exact, approx = rows @ query, scorer.scores(query)
        assert approx.dtype == np.float32 and approx.shape == (5000,)
        assert np.abs(approx - exact).max() < 0.005
        assert int(np.argmax(approx)) == i  # the row the question was made from wins


def test_quantised_rows_reconstruct_the_vectors() -> None:
    rows = _unit_rows(100)
    q, scale = quantize_rows(rows)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.abs(q * scale[:, None] - rows).max() <= scale.max() / 2 + 1e-7


def test_no_rows_and_a_zero_row() -> None:
    assert Int8Rows(np.zeros((0, 384), np.float32)).scores(np.ones(384, np.float32)).shape == (0,)
    rows = _unit_rows(3)
    rows[1] = 0.0
    scores = Int8Rows(rows).scores(rows[0])
    assert scores[1] == 0.0 and abs(scores[0] - 1.0) < 0.005


def test_grouping_takes_each_entry_s_best_unit_per_kind() -> None:
    rng = np.random.default_rng(2)
    n_entries = 50
    # Segments of every length from one unit to well past the short-gather limit, some
    # entries without units of a kind, units in no particular order.
    segment = np.concatenate(
        [np.full(int(rng.integers(1, SHORT * 3)), cell) for cell in range(0, n_entries * KINDS, 2)]
    )
    rng.shuffle(segment)
    grouping, order = Grouping.of(segment)
    scores = rng.standard_normal(len(segment)).astype(np.float32)
    best = grouping.best(scores[order], n_entries).ravel()
    for cell in range(n_entries * KINDS):
        mine = scores[segment == cell]
        assert best[cell] == (mine.max() if len(mine) else EMPTY)
