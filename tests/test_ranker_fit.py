"""The ranker's fit (``bench.retrieval.fit_ranker``) weighs a signal by what it tells, not
by its scale: the encoder's cosines spread across entries a tenth as much as BM25's."""

from __future__ import annotations

import numpy as np

from bench.retrieval import Case, fit_ranker
from knowledge.index import KINDS
from knowledge.ranking import Ranker, Signals

ENTRIES = 6


def _case(rng: np.random.Generator, target: int) -> Case:
    # "dense" tells the right entry by 0.02 within a spread of 0.01; "bm25" is noise at 1.0.
    dense = 0.85 + rng.normal(0.0, 0.01, (ENTRIES, KINDS))
    dense[target] += 0.02
    lexical = rng.normal(0.0, 1.0, (ENTRIES, KINDS))
    signals = Signals(
        scores={"dense": dense, "bm25": lexical},
        coverage=np.zeros(ENTRIES),
        question_units=np.ones(ENTRIES, dtype=int),
        answer_terms=np.full(ENTRIES, 50),
        in_language=np.ones(ENTRIES, dtype=bool),
        lang="en",
        chars=40,
        terms=5,
    )
    return Case({"id": f"q{target}"}, signals, target)


def _cases(seed: int, n: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [_case(rng, int(rng.integers(ENTRIES))) for _ in range(n)]


def test_a_narrow_but_telling_signal_outweighs_a_wide_noisy_one() -> None:
    features = ("dense:q", "dense:x", "bm25:q", "bm25:x")
    ranker = Ranker(features, fit_ranker(_cases(1, 300), features))
    held_out = _cases(2, 300)
    first = np.mean([int(np.argmax(ranker.scores(c.signals))) == c.target for c in held_out])
    assert first >= 0.9, first
    dense_weight = np.abs(ranker.weights[:2]).sum() * 0.01  # per unit of its spread
    lexical_weight = np.abs(ranker.weights[2:]).sum() * 1.0
    assert dense_weight > 5 * lexical_weight, ranker.weights
