"""Each entry's level of cosine on a background of other entries' questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge import background
from knowledge.background import Background, EntryLevels, entry_levels
from knowledge.dense import quantize_rows
from knowledge.segment import KINDS, PASSAGE, QUESTION, Dense, Segment

DIM = 384


def unit(rng: np.random.Generator, n: int, around: np.ndarray | None = None) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    if around is not None:  # near ``around``: cosine about 0.96
        v = v * 0.3 + around
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def dense_of(entries: list[list[tuple[int, np.ndarray]]]) -> Dense:
    """A Dense of entries given as [(kind, vectors), ...] each, in (entry, kind) order."""
    codes, vectors, starts = [], [], [0]
    for position, units in enumerate(entries):
        for kind, v in sorted(units, key=lambda u: u[0]):
            codes += [position * KINDS + kind] * len(v)
            vectors.append(v)
        starts.append(len(codes))
    rows, scale = quantize_rows(np.concatenate(vectors))
    return Dense(
        np.array(codes, np.int64), np.zeros(len(codes), np.uint8), rows, scale, np.array(starts)
    )


def test_many_phrasings_raise_an_entry_s_level() -> None:
    rng = np.random.default_rng(0)
    entries = [
        [(QUESTION, unit(rng, 30)), (PASSAGE, unit(rng, 2))],  # thirty aliases, all over
        [(QUESTION, unit(rng, 1)), (PASSAGE, unit(rng, 2))],  # one question
    ] + [[(QUESTION, unit(rng, 3))] for _ in range(40)]
    d = dense_of(entries)
    levels = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool))
    assert levels.mean.shape == (len(entries), KINDS)
    assert levels.mean[0, QUESTION] > levels.mean[1, QUESTION] + 0.05  # best of 30 vs of 1
    assert np.isnan(levels.mean[2:, PASSAGE]).all()  # no paragraphs: no level
    assert (levels.spread[:2, QUESTION] >= background.MIN_SPREAD).all()


def test_a_level_is_the_mean_best_cosine_with_other_entries_questions_only() -> None:
    rng = np.random.default_rng(4)
    topic = unit(rng, 1)[0]
    mine = unit(rng, 2, around=topic)  # two close phrasings: each other's best match
    others = [unit(rng, 2) for _ in range(3)]
    d = dense_of([[(QUESTION, mine)], *[[(QUESTION, o)] for o in others]])
    levels = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool))
    best = (np.concatenate(others) @ mine.T).max(axis=1)  # each other question vs entry 0
    assert levels.mean[0, QUESTION] == pytest.approx(best.mean(), abs=0.01)
    assert levels.spread[0, QUESTION] == pytest.approx(max(best.std(), 0.01), abs=0.01)
    assert levels.mean[0, QUESTION] < 0.5 < float((mine @ mine.T).min())


def test_standard_scores_are_neutral_where_an_entry_has_no_level() -> None:
    levels = EntryLevels(
        np.array([[0.5, np.nan, 0.4]], np.float32), np.array([[0.1, np.nan, 0.05]], np.float32)
    )
    z = levels.standardise(np.array([[0.7, 0.7, 0.3]]))
    np.testing.assert_allclose(z, [[2.0, 0.0, -2.0]], rtol=1e-5)
    back = EntryLevels.from_array(levels.to_array())
    np.testing.assert_array_equal(back.mean, levels.mean)


def test_excluded_entries_leave_the_background() -> None:
    rng = np.random.default_rng(1)
    near = unit(rng, 1)[0]
    entries = [[(QUESTION, unit(rng, 2, around=near))], [(QUESTION, unit(rng, 2, around=near))]]
    entries += [[(QUESTION, unit(rng, 2))] for _ in range(20)]
    d = dense_of(entries)
    bg = Background.of(d)
    with_neighbour = entry_levels(d, bg, np.zeros(0, dtype=bool)).mean[0, QUESTION]
    excluded = np.zeros(len(entries), dtype=bool)
    excluded[1] = True  # entry 1 (its close neighbour) removed since
    without = entry_levels(d, bg, excluded).mean[0, QUESTION]
    assert without < with_neighbour - 0.02


def test_chunks_and_a_sampled_background_give_the_same_kind_of_levels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(2)
    entries = [[(QUESTION, unit(rng, 1 + i % 5)), (PASSAGE, unit(rng, 2))] for i in range(60)]
    d = dense_of(entries)
    whole = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool))
    monkeypatch.setattr(background, "CHUNK", 7)  # groups cut across many chunks
    chunked = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool))
    np.testing.assert_allclose(chunked.mean, whole.mean, atol=1e-6)
    np.testing.assert_allclose(chunked.spread, whole.spread, atol=1e-6)
    sample = Background.of(d, size=100)  # of 180 question rows
    assert len(sample.owner) == 100 and (np.diff(sample.owner) >= 0).all()
    sampled = entry_levels(d, sample, np.zeros(0, dtype=bool))
    assert np.abs(sampled.mean - whole.mean)[:, QUESTION].max() < 0.05


def test_a_saved_segment_keeps_its_levels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    d = dense_of([[(QUESTION, unit(rng, 2))] for _ in range(5)])
    segment = Segment.empty(("m",))
    segment.dense["m"] = d
    levels = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool))
    segment.levels["m"] = levels.to_array()
    segment.save(tmp_path)
    np.testing.assert_array_equal(Segment.open(tmp_path).levels["m"], levels.to_array())
    segment.levels.clear()
    (tmp_path / "levels0.npy").unlink()
    segment.save(tmp_path)
    assert Segment.open(tmp_path).levels == {}
