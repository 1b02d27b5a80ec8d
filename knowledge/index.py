"""In-memory retrieval index per process, loaded from stored embeddings and terms.

Nothing is embedded or tokenised at load: vectors and terms were stored at write time.
An entry's score under one signal is the best score over its units (question, aliases,
answer passages, both languages).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge.lexical import BM25
from knowledge.models import Course, Embedding, Entry, IndexUnit


@dataclass(frozen=True)
class IndexedEntry:
    id: int
    slug: str
    course: str
    question: dict[str, str]
    content_hash: str  # of the entry's content when the index was loaded


@dataclass
class Grouping:
    """Units sorted by entry, so a per-entry max is one ``np.maximum.reduceat``."""

    owner: np.ndarray  # (units,) entry position of each unit, ascending
    starts: np.ndarray  # first unit of each entry that has units

    @classmethod
    def of(cls, owner: np.ndarray) -> tuple[Grouping, np.ndarray]:
        order = np.argsort(owner, kind="stable")
        owner = owner[order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
        return cls(owner, starts), order

    def best_per_entry(self, unit_scores: np.ndarray, n_entries: int) -> np.ndarray:
        scores = np.zeros(n_entries, dtype=np.float32)
        if len(self.owner):
            scores[self.owner[self.starts]] = np.maximum.reduceat(unit_scores, self.starts)
        return scores


@dataclass
class KnowledgeIndex:
    version: int
    entries: list[IndexedEntry]
    vectors: dict[str, np.ndarray]  # model -> (units, dim), rows normalised
    groupings: dict[str, Grouping]  # model -> grouping of its rows
    lexical: BM25
    lexical_grouping: Grouping
    _lang_masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, session: Session, models: tuple[str, ...], version: int) -> KnowledgeIndex:
        rows = session.execute(
            select(Entry.id, Entry.slug, Course.code, Entry.question, Entry.content_hash)
            .join(Course)
            .where(Entry.deleted_at.is_(None))
            .order_by(Entry.id)
        ).all()
        entries = [IndexedEntry(*r) for r in rows]
        position = {e.id: i for i, e in enumerate(entries)}

        units = session.execute(
            select(IndexUnit.entry_id, IndexUnit.terms).order_by(IndexUnit.id)
        ).all()
        units = [u for u in units if u[0] in position]
        owner = np.fromiter((position[u[0]] for u in units), dtype=np.int64, count=len(units))
        lexical_grouping, order = Grouping.of(owner)
        lexical = BM25([units[i][1].split() for i in order])

        vectors: dict[str, np.ndarray] = {}
        groupings: dict[str, Grouping] = {}
        for model in models:
            rows_m = session.execute(
                select(IndexUnit.entry_id, Embedding.vector)
                .join(Embedding, Embedding.text_hash == IndexUnit.text_hash)
                .where(Embedding.model == model)
                .order_by(IndexUnit.id)
            ).all()
            rows_m = [r for r in rows_m if r[0] in position]
            owner_m = np.fromiter(
                (position[r[0]] for r in rows_m), dtype=np.int64, count=len(rows_m)
            )
            groupings[model], order_m = Grouping.of(owner_m)
            if rows_m:
                matrix = np.frombuffer(b"".join(r[1] for r in rows_m), dtype="<f4")
                matrix = matrix.reshape(len(rows_m), -1)[order_m]
            else:
                matrix = np.zeros((0, 1), dtype=np.float32)
            vectors[model] = np.ascontiguousarray(matrix, dtype=np.float32)
        return cls(version, entries, vectors, groupings, lexical, lexical_grouping)

    @property
    def missing_vectors(self) -> dict[str, int]:
        """Model -> units with no stored vector (scored 0 by that model until `kb import`)."""
        units = len(self.lexical_grouping.owner)
        return {m: n for m, g in self.groupings.items() if (n := units - len(g.owner))}

    def has_lang(self, lang: str) -> np.ndarray:
        """Mask of entries written in ``lang`` (cached per language)."""
        if lang not in self._lang_masks:
            self._lang_masks[lang] = np.array(
                [lang in e.question for e in self.entries], dtype=bool
            )
        return self._lang_masks[lang]

    def dense_scores(self, model: str, query: np.ndarray) -> np.ndarray:
        """Best unit cosine per entry under ``model``."""
        return self.groupings[model].best_per_entry(self.vectors[model] @ query, len(self.entries))

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """Best normalised BM25 per entry."""
        return self.lexical_grouping.best_per_entry(self.lexical.scores(terms), len(self.entries))
