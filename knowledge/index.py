"""In-memory retrieval index per process, loaded from stored embeddings (never re-embedded).

Entry score under one model = the best cosine over the entry's units (question, aliases,
answer passages, both languages).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge.models import Course, Embedding, Entry, IndexUnit


@dataclass(frozen=True)
class IndexedEntry:
    id: int
    slug: str
    course: str
    question: dict[str, str]


@dataclass
class ModelMatrix:
    vectors: np.ndarray  # (units, dim), float32, rows normalised
    unit_entry: np.ndarray  # (units,) position of the unit's entry in KnowledgeIndex.entries
    starts: np.ndarray  # first unit of each run of equal unit_entry (units sorted by entry)


@dataclass
class KnowledgeIndex:
    version: int
    entries: list[IndexedEntry]
    matrices: dict[str, ModelMatrix]

    @classmethod
    def load(cls, session: Session, models: tuple[str, ...], version: int) -> KnowledgeIndex:
        rows = session.execute(
            select(Entry.id, Entry.slug, Course.code, Entry.question)
            .join(Course)
            .where(Entry.deleted_at.is_(None))
            .order_by(Entry.id)
        ).all()
        entries = [IndexedEntry(r[0], r[1], r[2], r[3]) for r in rows]
        position = {e.id: i for i, e in enumerate(entries)}
        matrices: dict[str, ModelMatrix] = {}
        for model in models:
            units = session.execute(
                select(IndexUnit.entry_id, Embedding.vector)
                .join(Embedding, Embedding.text_hash == IndexUnit.text_hash)
                .where(Embedding.model == model)
                .order_by(IndexUnit.id)
            ).all()
            units = [u for u in units if u[0] in position]
            if units:
                vectors = np.frombuffer(b"".join(u[1] for u in units), dtype="<f4")
                vectors = vectors.reshape(len(units), -1).astype(np.float32, copy=False)
            else:
                vectors = np.zeros((0, 1), dtype=np.float32)
            owner = np.fromiter((position[u[0]] for u in units), dtype=np.int64, count=len(units))
            # Group units by entry so a per-entry max is one np.maximum.reduceat.
            order = np.argsort(owner, kind="stable")
            owner = owner[order]
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
            matrices[model] = ModelMatrix(np.ascontiguousarray(vectors[order]), owner, starts)
        return cls(version=version, entries=entries, matrices=matrices)

    def entry_scores(self, model: str, query: np.ndarray) -> np.ndarray:
        """Best unit cosine per entry (-1 for an entry with no units under this model)."""
        m = self.matrices[model]
        scores = np.full(len(self.entries), -1.0, dtype=np.float32)
        if len(m.unit_entry):
            best = np.maximum.reduceat(m.vectors @ query, m.starts)
            scores[m.unit_entry[m.starts]] = best
        return scores
