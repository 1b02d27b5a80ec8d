"""How much of a question an entry's own text covers, token by token.

Each token of the question (the encoder's last-layer state, in its context) is matched
with the most similar token of the entry's question-like units and answer paragraphs; the
mean of those best cosines, each token weighted by its idf over real questions, is the
entry's token recall (BERTScore's recall with idf). A paraphrase of an entry finds a
close token for nearly each of its own, in either language; a question about a
neighbouring mechanism (rotary position embeddings, asked of the attention-scaling
entry) leaves its own terms unmatched, which a sentence vector averages away. It is an
input of the confidence, not of the ranking.

States are centred on the mean state of real questions (``ranking.TokenSpace``, fitted
with the model) before the cosine: uncentred, the states of any two tokens are alike.

An entry's states come from the same encoder, computed when the entry is first a
candidate (or at a web process's start) and kept per process, least recently used out
first, keyed by the entry's content hash: an edit is seen at once, and databases holding
the same entry share them. A knowledge base larger than the cache
(``TOKEN_MATCH_ENTRIES``) does without: the model's fallback confidence decides there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.embedders import QUESTION_KINDS
from knowledge.ranking import RetrievalModel, TokenSpace
from knowledge.segment import IndexedEntry
from knowledge.tables import IndexUnit


def recall(question: np.ndarray, entry: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The mean over the question's tokens (weighted by ``weights``) of the best cosine with
    any of the entry's (both centred, ``TokenSpace.project``)."""
    if not len(question) or not len(entry):
        return 0.0
    best = (question @ entry.T).max(axis=1)
    if weights is None:
        return float(best.mean())
    return float(best @ weights / max(float(weights.sum()), 1e-12))


class EntryStates:
    """Centred token states of entries, computed on first need and cached (per process)."""

    def __init__(self, model: str, space: TokenSpace, max_entries: int) -> None:
        self.model, self.space, self.max_entries = model, space, max_entries
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, factory: sessionmaker[Session], entries: Sequence[IndexedEntry]
    ) -> list[np.ndarray]:
        """Each entry's states (float32 (tokens, dim)), in order."""
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

    def _empty(self) -> np.ndarray:
        return np.zeros((0, len(self.space.mean)), dtype=np.float32)

    def _compute(self, factory: sessionmaker[Session], ids: list[int]) -> dict[int, np.ndarray]:
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
            if states:  # float32: a float16 copy would be converted at every question
                out[entry_id] = self.space.project(np.concatenate(states))
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
