"""In-memory retrieval index per process, loaded from stored embeddings and terms.

Nothing is embedded or tokenised at load: vectors and terms were stored at write time.
Each signal scores an entry three times: by its best question-like unit (the question in
each language and any aliases), by its best answer paragraph and by its whole answer.
Keeping them apart lets the ranker weigh them, and keeps an entry's many aliases from
lifting its answer scores. Whole answers have a BM25 corpus of their own, so that their
length is compared with other answers, not with one-line questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from knowledge.dense import Int8Rows
from knowledge.embedders import QUESTION_KINDS, inference_threads, vector_name
from knowledge.lexical import BM25
from knowledge.tables import Course, Embedding, Entry, IndexUnit

QUESTION, PASSAGE, ANSWER = 0, 1, 2  # columns of a per-entry score matrix
KINDS = 3
EMPTY = -1.0  # the score of an entry with no unit of a kind (below any cosine or BM25)


def kind_column(kind: str) -> int:
    """Questions and aliases are question-like; then answer paragraphs and whole answers."""
    return {"passage": PASSAGE, "answer": ANSWER}.get(kind, QUESTION)


@dataclass(frozen=True)
class IndexedEntry:
    id: int
    slug: str
    course: str
    question: dict[str, str]
    content_hash: str  # of the entry's content when the index was loaded


# Segments of at most this many units take their max as SHORT gathers (one per
# position, the last unit repeated): at 10k entries that is ten times faster than
# ``np.maximum.reduceat``, whose cost is per segment. Longer ones use reduceat.
SHORT = 4


@dataclass
class Grouping:
    """Units sorted by (entry, kind), so a per-entry, per-kind max is a few gathers."""

    segment: np.ndarray  # (units,) entry position * KINDS + kind column, ascending
    starts: np.ndarray  # first unit of each segment that has units
    cells: np.ndarray = field(init=False)  # each segment's cell in (entries * KINDS)
    _short: np.ndarray = field(init=False)  # (SHORT, short segments) unit rows
    _long_rows: np.ndarray = field(init=False)  # units of the long segments, in order
    _long_starts: np.ndarray = field(init=False)  # their segments' starts in _long_rows
    _short_mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        ends = np.r_[self.starts[1:], len(self.segment)].astype(np.int64)
        starts = self.starts.astype(np.int64)
        lengths = ends - starts
        self.cells = self.segment[self.starts] if len(self.segment) else self.starts
        self._short_mask = lengths <= SHORT
        first, last = starts[self._short_mask], ends[self._short_mask] - 1
        self._short = np.minimum(first + np.arange(SHORT)[:, None], last)
        long_starts, long_ends = starts[~self._short_mask], ends[~self._short_mask]
        self._long_rows = (
            np.concatenate([np.arange(a, b) for a, b in zip(long_starts, long_ends, strict=True)])
            if len(long_starts)
            else np.zeros(0, dtype=np.int64)
        )
        self._long_starts = np.r_[0, np.cumsum(long_ends - long_starts)[:-1]].astype(np.int64)

    @classmethod
    def of(cls, segment: np.ndarray) -> tuple[Grouping, np.ndarray]:
        order = np.argsort(segment, kind="stable")
        segment = segment[order]
        starts = (
            np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]]) if len(segment) else segment
        )
        return cls(segment, starts), order

    @property
    def units(self) -> int:
        return len(self.segment)

    def best(self, unit_scores: np.ndarray, n_entries: int) -> np.ndarray:
        """(n_entries, KINDS): the best unit score per entry and kind, EMPTY where none."""
        scores = np.full(n_entries * KINDS, EMPTY, dtype=np.float32)
        if len(self.segment):
            short = unit_scores[self._short[0]]
            for rows in self._short[1:]:
                np.maximum(short, unit_scores[rows], out=short)
            scores[self.cells[self._short_mask]] = short
            if len(self._long_rows):
                scores[self.cells[~self._short_mask]] = np.maximum.reduceat(
                    unit_scores[self._long_rows], self._long_starts
                )
        return scores.reshape(n_entries, KINDS)

    def counts(self, n_entries: int) -> np.ndarray:
        """(n_entries, KINDS): how many units each entry has of each kind."""
        return np.bincount(self.segment, minlength=n_entries * KINDS).reshape(n_entries, KINDS)


@dataclass
class KnowledgeIndex:
    version: int
    entries: list[IndexedEntry]
    vectors: dict[str, Int8Rows]  # model -> its unit vectors, in grouping order
    groupings: dict[str, Grouping]  # model -> grouping of its rows
    lexical: Lexical
    unit_langs: dict[str, np.ndarray]  # model -> language of each of its rows
    _lang_masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _lang_rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

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
            select(IndexUnit.entry_id, IndexUnit.kind, IndexUnit.terms).order_by(IndexUnit.id)
        ).all()
        units = [u for u in units if u[0] in position]
        lexical = Lexical.build(units, position, len(entries))

        vectors: dict[str, Int8Rows] = {}
        langs: dict[str, np.ndarray] = {}
        groupings: dict[str, Grouping] = {}
        for model in models:
            # Question-like units may have their vectors under another name (as questions).
            stored_as = case(
                (IndexUnit.kind.in_(QUESTION_KINDS), vector_name(model, "question")),
                else_=vector_name(model, "passage"),
            )
            rows_m = session.execute(
                select(IndexUnit.entry_id, IndexUnit.kind, Embedding.vector, IndexUnit.lang)
                .join(
                    Embedding,
                    (Embedding.text_hash == IndexUnit.text_hash) & (Embedding.model == stored_as),
                )
                .order_by(IndexUnit.id)
            ).all()
            rows_m = [r for r in rows_m if r[0] in position]
            groupings[model], order_m = Grouping.of(_segments(rows_m, position))
            if rows_m:
                matrix = np.frombuffer(b"".join(r[2] for r in rows_m), dtype="<f4")
                matrix = matrix.reshape(len(rows_m), -1)[order_m]
            else:
                matrix = np.zeros((0, 1), dtype=np.float32)
            vectors[model] = Int8Rows(matrix, inference_threads())
            langs[model] = np.array([rows_m[i][3] for i in order_m], dtype="<U2")
        return cls(version, entries, vectors, groupings, lexical, langs)

    @property
    def missing_vectors(self) -> dict[str, int]:
        """Model -> units with no stored vector (scored as absent until `kb import`)."""
        units = self.lexical.grouping.units
        return {m: n for m, g in self.groupings.items() if (n := units - g.units)}

    def has_lang(self, lang: str) -> np.ndarray:
        """Mask of entries written in ``lang`` (cached per language)."""
        if lang not in self._lang_masks:
            self._lang_masks[lang] = np.array(
                [lang in e.question for e in self.entries], dtype=bool
            )
        return self._lang_masks[lang]

    def dense_scores(self, model: str, query: np.ndarray, lang: str) -> np.ndarray:
        """(entries, KINDS): best cosine per entry and unit kind under ``model``, for a
        question in ``lang``.

        A multilingual encoder still scores a question higher against unrelated text in
        its own language than against the right answer in the other: on the evaluation
        set, an entry written only in the other language ranked first by cosine for 17 %
        of its questions. So the cosines with units in the other language are put on the
        scale of those in the question's language (the same mean and spread for this
        question), which keeps the scale the calibration knows (65 % then).
        """
        scores = self.vectors[model].scores(query)
        same, other = self._rows_by_language(model, lang)
        if len(same) > 1 and len(other) > 1:
            own, across = scores[same], scores[other]
            scale = own.std() / (across.std() + 1e-6)
            scores[other] = (across - across.mean()) * scale + own.mean()
        return self.groupings[model].best(scores, len(self.entries))

    def _rows_by_language(self, model: str, lang: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``model``'s units in ``lang``, and the others (cached)."""
        key = (model, lang)
        if key not in self._lang_rows:
            same = self.unit_langs[model] == lang
            self._lang_rows[key] = (np.flatnonzero(same), np.flatnonzero(~same))
        return self._lang_rows[key]

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """(entries, KINDS): best normalised BM25 per entry and unit kind."""
        return self.lexical.scores(terms)


@dataclass
class Lexical:
    """BM25 over units (whole answers in a corpus of their own) and per-entry term coverage."""

    grouping: Grouping
    units: BM25  # question-like units and answer paragraphs
    answers: BM25  # whole answers
    unit_rows: np.ndarray  # where each of ``units``' documents sits in grouping order
    answer_rows: np.ndarray  # likewise for ``answers``
    entries_with: dict[str, np.ndarray]  # term -> positions of the entries that use it
    question_units: np.ndarray  # (entries,) question-like units per entry
    answer_terms: np.ndarray  # (entries,) terms in the entry's whole answer (mean over languages)
    n_entries: int

    @classmethod
    def build(cls, units: list, position: dict[int, int], n_entries: int) -> Lexical:
        """From (entry_id, kind, terms) rows of live entries."""
        grouping, order = Grouping.of(_segments(units, position))
        docs = [units[i][2].split() for i in order]
        is_answer = np.array([units[i][1] == "answer" for i in order], dtype=bool)
        unit_rows, answer_rows = np.flatnonzero(~is_answer), np.flatnonzero(is_answer)
        unit_bm25 = BM25([docs[i] for i in unit_rows])
        # An answer's terms are its paragraphs' terms: the units corpus has every term.
        owner = (grouping.segment // KINDS)[unit_rows]
        entries_with = {t: np.unique(owner[ids]) for t, (ids, _) in unit_bm25.postings.items()}
        answer_owner = (grouping.segment // KINDS)[answer_rows]
        answers = np.bincount(answer_owner, minlength=n_entries)
        answer_terms = np.bincount(
            answer_owner, weights=[len(docs[i]) for i in answer_rows], minlength=n_entries
        ) / np.maximum(answers, 1)
        return cls(
            grouping,
            unit_bm25,
            BM25([docs[i] for i in answer_rows]),
            unit_rows,
            answer_rows,
            entries_with,
            grouping.counts(n_entries)[:, QUESTION],
            answer_terms,
            n_entries,
        )

    def scores(self, terms: list[str]) -> np.ndarray:
        """(entries, KINDS): best normalised BM25 per entry and unit kind."""
        unit_scores = np.zeros(self.grouping.units, dtype=np.float32)
        unit_scores[self.unit_rows] = self.units.scores(terms)
        unit_scores[self.answer_rows] = self.answers.scores(terms)
        return self.grouping.best(unit_scores, self.n_entries)

    def coverage(self, terms: list[str]) -> np.ndarray:
        """(entries,): the share of the question's term weight (IDF) each entry's text uses.

        A paraphrase uses the entry's own words or common ones; a question about a
        neighbouring mechanism names something (spectral norm, KV cache) the entry never
        mentions, which costs that term's high IDF.
        """
        covered = np.zeros(self.n_entries, dtype=np.float32)
        total = 0.0
        for term in set(terms):
            weight = self.units.idf.get(term, self.units.default_idf)
            total += weight
            if term in self.entries_with:
                covered[self.entries_with[term]] += weight
        return covered / total if total else covered


def _segments(rows: list, position: dict[int, int]) -> np.ndarray:
    """Entry position * KINDS + kind column for rows starting (entry_id, kind, ...)."""
    return np.fromiter(
        (position[r[0]] * KINDS + kind_column(r[1]) for r in rows), dtype=np.int64, count=len(rows)
    )
