"""How much of a question an entry's own text covers, token by token.

Each token of the question (the encoder's last-layer state, in its context) is matched
with the most similar token of the entry's question-like units and answer paragraphs; the
mean of those best cosines, each token weighted by its idf over real questions, is the
entry's token recall (BERTScore's recall with idf). A paraphrase of an entry finds a
close token for nearly each of its own, in either language; a question about a
neighbouring mechanism (rotary position embeddings, asked of the attention-scaling
entry) leaves its own terms unmatched, which a sentence vector averages away. The share
of the question's tokens (by idf) with no close token in the entry says so directly
(``match``). Both are inputs of the confidence, not of the ranking.

States are centred on the mean state of real questions (``ranking.TokenSpace``, fitted
with the model) before the cosine: uncentred, the states of any two tokens are alike.

The products run in int8 (``Int8Columns``, ONNX Runtime's integer kernels), as the dense
scores do (``knowledge.dense``): a float32 entry of 1,500 tokens is 2.3 MB to read per
question, which at three candidates per question took about 0.9 ms here with cold
caches, against about 0.5 ms in int8 at a quarter of the memory; a best cosine moves
by at most about 0.002 (``tests/test_token_match.py``).

An entry's states come from the same encoder, computed when the entry is first a
candidate (or at a web process's start) and kept per process, least recently used out
first, keyed by the entry's content hash: an edit is seen at once, and databases holding
the same entry share them. A knowledge base larger than the cache
(``TOKEN_MATCH_ENTRIES``) does without: the model's fallback confidence decides there.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge import dense, embedders
from knowledge.embedders import QUESTION_KINDS
from knowledge.ranking import RetrievalModel, TokenSpace
from knowledge.segment import IndexedEntry
from knowledge.tables import IndexUnit

# A question token whose best cosine with the entry's tokens is below this is missed: the
# entry says nothing near it (the midpoint of the observed range; out of fold on the
# tuning half 0.4 and 0.6 did no better).
MISSED_BELOW = 0.5


@dataclass(frozen=True)
class Int8Columns:
    """One entry's token states as int8 columns with one scale: a state ≈ codes * scale.

    C-contiguous (dim, tokens): the product with a question's rows needs no transposed
    copy. One scale for the entry (not one per token) lets a question token's best
    product be found among the integers, and only the best scaled."""

    codes: np.ndarray  # (dim, tokens) int8
    scale: float

    @classmethod
    def of(cls, states: np.ndarray) -> Int8Columns:
        """Of float (dim, tokens) states."""
        top = float(np.abs(states).max()) if states.size else 0.0
        scale = top / 127.0 or 1.0
        return cls(np.ascontiguousarray(np.round(states / scale).astype(np.int8)), scale)

    @property
    def tokens(self) -> int:
        return int(self.codes.shape[1])


def match(
    question: np.ndarray, entry: Int8Columns, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """(recall, missed) of the question's tokens (rows, weighted by ``weights``) against
    the entry's (``EntryStates``; both centred, ``TokenSpace.project``): the weighted
    mean of each question token's best cosine with any entry token, and the weighted
    share of question tokens whose best cosine is below ``MISSED_BELOW``."""
    return match_each(question, [entry], weights)[0]


def match_each(
    question: np.ndarray, entries: Sequence[Int8Columns], weights: np.ndarray | None = None
) -> list[tuple[float, float]]:
    """``match`` for each of ``entries``, the question quantised once."""
    if not len(question):
        return [(0.0, 1.0)] * len(entries)
    rows, step = dense.quantize_questions(question)
    w = np.ones(len(question), dtype=np.float32) if weights is None else weights
    total = max(float(w.sum()), 1e-12)
    out = []
    for entry in entries:
        if not entry.tokens:
            out.append((0.0, 1.0))
            continue
        (dots,) = _product_session().run(
            None, {"question": rows, "units": entry.codes, "zero": dense.ZERO}
        )
        best = dots.max(axis=1) * (step * entry.scale)
        out.append((float(best @ w) / total, float(w[best < MISSED_BELOW].sum()) / total))
    return out


@functools.cache
def _product_session() -> Any:  # noqa: ANN401 (an onnxruntime.InferenceSession)
    """One integer product per process, the entry's codes an input (``dense.integer_product``)."""
    return dense.integer_product()


class EntryStates:
    """Centred token states of entries (``Int8Columns``), computed on first need and
    cached (per process)."""

    def __init__(self, model: str, space: TokenSpace, max_entries: int) -> None:
        self.model, self.space, self.max_entries = model, space, max_entries
        self._cache: OrderedDict[str, Int8Columns] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, factory: sessionmaker[Session], entries: Sequence[IndexedEntry]
    ) -> list[Int8Columns]:
        """Each entry's states, in order."""
        keys = [e.content_hash for e in entries]  # the same content has the same units
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        missing = {e.content_hash: e.id for e in entries if e.content_hash not in found}
        if missing:
            computed = self._compute(factory, list(missing.values()))
            with self._lock:
                for k, entry_id in missing.items():
                    found[k] = self._cache[k] = computed.get(entry_id, self._empty())
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return [found[k] for k in keys]

    def _empty(self) -> Int8Columns:
        return Int8Columns(np.zeros((len(self.space.mean), 0), dtype=np.int8), 1.0)

    def _compute(self, factory: sessionmaker[Session], ids: list[int]) -> dict[int, Int8Columns]:
        return {i: Int8Columns.of(states) for i, states in self.float_states(factory, ids).items()}

    def float_states(self, factory: sessionmaker[Session], ids: list[int]) -> dict[int, np.ndarray]:
        """The entries' centred states as float32 (dim, tokens), before quantisation."""
        with factory() as session:
            rows = session.execute(
                select(IndexUnit.entry_id, IndexUnit.kind, IndexUnit.text)
                .where(IndexUnit.entry_id.in_(ids))
                .order_by(IndexUnit.id)
            ).all()
        units: dict[int, list[tuple[str, str]]] = {}
        for entry_id, kind, text in rows:
            units.setdefault(entry_id, []).append((kind, text))
        embedder: Any = embedders.get(self.model)
        out = {}
        for entry_id, these in units.items():
            kinds = {kind for kind, _ in these}
            # The whole answer repeats its paragraphs: only an answer of one has none.
            questions = [t for k, t in these if k in QUESTION_KINDS]
            passages = [
                t for k, t in these if k == "passage" or (k == "answer" and "passage" not in kinds)
            ]
            states = [
                *(embedder.token_states(questions, "query") if questions else []),
                *(embedder.token_states(passages, "passage") if passages else []),
            ]
            if states:
                out[entry_id] = self.space.project(np.concatenate(states)).T
        return out


_shared: dict[tuple[str, bytes, int], EntryStates] = {}  # by model, space and size
_shared_lock = threading.Lock()


def shared(model: RetrievalModel, max_entries: int) -> EntryStates | None:
    """One cache per process for ``model``'s token states (keyed by content hash, so
    retrievers of different databases share it); None when the model does not use them
    or ``max_entries`` is 0."""
    if not model.uses_tokens or max_entries <= 0:
        return None
    assert model.tokens is not None and model.token_model is not None
    key = (model.token_model, model.tokens.mean.tobytes(), max_entries)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = EntryStates(model.token_model, model.tokens, max_entries)
        return _shared[key]
