"""A segment: the index data of a set of entries, as flat arrays.

An index is a base segment (every entry at some knowledge version, usually mapped from
a snapshot file) plus a small segment of the entries changed since, rebuilt on every
change (``knowledge.index``). A segment is built from the database in chunks, so that
100k entries never exist as Python rows all at once, and is saved to and mapped from a
directory of ``.npy`` files (``knowledge.snapshot``).

Units are kept in (entry, kind) order, so each entry's units are one contiguous range
and a per-entry, per-kind best score is a few gathers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from sqlalchemy import ColumnElement, Select, case, select, true
from sqlalchemy.orm import Session

from knowledge.dense import quantize_rows
from knowledge.embedders import QUESTION_KINDS, vector_name
from knowledge.lexical import Postings
from knowledge.tables import Course, Embedding, Entry, IndexUnit

QUESTION, PASSAGE, ANSWER = 0, 1, 2  # columns of a per-entry score matrix
KINDS = 3
CHUNK = 20_000  # rows fetched per round trip while building
LANGS = ("en", "ja")  # language codes of unit rows; any other is stored as "other"


def kind_column(kind: str) -> int:
    """Questions and aliases are question-like; then answer paragraphs and whole answers."""
    return {"passage": PASSAGE, "answer": ANSWER}.get(kind, QUESTION)


def lang_code(lang: str) -> int:
    return LANGS.index(lang) if lang in LANGS else len(LANGS)


_KIND_SQL = case(
    (IndexUnit.kind == "passage", PASSAGE), (IndexUnit.kind == "answer", ANSWER), else_=QUESTION
)


@dataclass(frozen=True)
class IndexedEntry:
    id: int
    slug: str
    course: str
    question: dict[str, str]
    content_hash: str  # of the entry's content when the index was loaded


@dataclass
class Dense:
    """One model's unit vectors: int8 rows with a scale each, in (entry, kind) order."""

    codes: np.ndarray  # (units,) int64 entry position * KINDS + kind column, ascending
    langs: np.ndarray  # (units,) uint8 language code
    rows: np.ndarray  # (units, dim) int8
    scale: np.ndarray  # (units,) float32
    entry_start: np.ndarray  # (entries + 1,) first unit of each entry


@dataclass
class Lexical:
    """Terms of the units: two BM25 corpora (question-like units and answer paragraphs;
    whole answers, whose lengths are compared only with other answers)."""

    codes: np.ndarray  # (units,) int64 entry position * KINDS + kind column, ascending
    entry_start: np.ndarray  # (entries + 1,)
    unit_rows: np.ndarray  # where each doc of ``units`` sits among the units
    answer_rows: np.ndarray  # likewise for ``answers``
    units: Postings
    answers: Postings
    unit_owner: np.ndarray  # (docs of ``units``,) int32 entry position of each doc


@dataclass
class Segment:
    entry_ids: np.ndarray  # (entries,) int64, ascending
    meta: np.ndarray  # uint8 JSON of each entry's [slug, course, question, content hash]
    meta_start: np.ndarray  # (entries + 1,) int64
    courses: list[str]  # course code by number
    course_of: np.ndarray  # (entries,) int32 course number
    langs: np.ndarray  # (entries,) uint8 bit per LANGS code the entry's question has
    question_units: np.ndarray  # (entries,) int32 question-like units
    answer_terms: np.ndarray  # (entries,) float32 terms per whole answer (mean over languages)
    lexical: Lexical
    dense: dict[str, Dense]
    # model -> (2, entries, KINDS) float32: each entry's level of cosine, mean and spread
    # (``knowledge.background``); saved with a base, absent until computed
    levels: dict[str, np.ndarray] = field(default_factory=dict)
    _course_numbers: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._course_numbers = {c: i for i, c in enumerate(self.courses)}

    def __len__(self) -> int:
        return len(self.entry_ids)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.dense)

    @classmethod
    def empty(cls, models: tuple[str, ...]) -> Segment:
        """A segment of no entries (the delta of an index that has caught nothing up)."""
        i64, none = np.zeros(0, np.int64), np.zeros(1, np.int64)
        lexical = Lexical(
            i64, none, i64, i64, Postings.build([]), Postings.build([]), np.zeros(0, np.int32)
        )
        return cls(
            i64,
            np.zeros(0, np.uint8),
            none,
            [],
            np.zeros(0, np.int32),
            np.zeros(0, np.uint8),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
            lexical,
            {m: _empty_dense(0) for m in models},
        )

    def entry(self, position: int) -> IndexedEntry:
        raw = bytes(self.meta[self.meta_start[position] : self.meta_start[position + 1]])
        slug, course, question, digest = json.loads(raw)
        return IndexedEntry(int(self.entry_ids[position]), slug, course, question, digest)

    def positions_of(self, entry_ids: np.ndarray) -> np.ndarray:
        """Positions of those of ``entry_ids`` this segment holds."""
        if not len(self.entry_ids) or not len(entry_ids):
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.entry_ids, entry_ids), len(self.entry_ids) - 1)
        return at[self.entry_ids[at] == entry_ids].astype(np.int64)

    def in_course(self, course: str) -> np.ndarray:
        """(entries,) mask of the entries of ``course``."""
        number = self._course_numbers.get(course, -1)
        return self.course_of == number

    def has_lang(self, lang: str) -> np.ndarray:
        return (self.langs & (1 << lang_code(lang))) != 0

    # -- files -------------------------------------------------------------
    ARRAYS = (
        "entry_ids",
        "meta",
        "meta_start",
        "course_of",
        "langs",
        "question_units",
        "answer_terms",
    )

    def save(self, directory: Path) -> list[str]:
        """Write every array as ``.npy`` and the rest as JSON; returns the file names."""
        files: dict[str, np.ndarray] = {name: getattr(self, name) for name in self.ARRAYS}
        lex = self.lexical
        for name in ("codes", "entry_start", "unit_rows", "answer_rows", "unit_owner"):
            files[f"lex.{name}"] = getattr(lex, name)
        for corpus in ("units", "answers"):
            p: Postings = getattr(lex, corpus)
            for name in ("start", "docs", "tf", "lengths", "token_start", "tokens"):
                files[f"{corpus}.{name}"] = getattr(p, name)
        for i, (model, d) in enumerate(self.dense.items()):
            for name in ("codes", "langs", "rows", "scale", "entry_start"):
                files[f"dense{i}.{name}"] = getattr(d, name)
            if model in self.levels:
                files[f"levels{i}"] = self.levels[model]
        for name, array in files.items():
            np.save(directory / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        words = {
            "courses": self.courses,
            "models": list(self.dense),
            "units.terms": lex.units.terms,
            "answers.terms": lex.answers.terms,
        }
        (directory / "words.json").write_text(json.dumps(words, ensure_ascii=False), "utf-8")
        return [f"{name}.npy" for name in files] + ["words.json"]

    @classmethod
    def open(cls, directory: Path) -> Segment:
        """Map a saved segment: big arrays stay in the file (shared with every process
        that maps it) and are read only where a question touches them."""
        words = json.loads((directory / "words.json").read_text("utf-8"))

        def array(name: str) -> np.ndarray:
            mapped = np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            return np.asarray(mapped)  # a plain view: memmap's indexing costs per call

        def postings(corpus: str) -> Postings:
            names = ("start", "docs", "tf", "lengths", "token_start", "tokens")
            return Postings(words[f"{corpus}.terms"], *(array(f"{corpus}.{n}") for n in names))

        lexical = Lexical(
            array("lex.codes"),
            array("lex.entry_start"),
            array("lex.unit_rows"),
            array("lex.answer_rows"),
            postings("units"),
            postings("answers"),
            array("lex.unit_owner"),
        )
        dense = {
            model: Dense(
                *(
                    array(f"dense{i}.{n}")
                    for n in ("codes", "langs", "rows", "scale", "entry_start")
                )
            )
            for i, model in enumerate(words["models"])
        }
        levels = {
            model: array(f"levels{i}")
            for i, model in enumerate(words["models"])
            if (directory / f"levels{i}.npy").is_file()
        }
        return cls(
            entry_ids=array("entry_ids"),
            meta=array("meta"),
            meta_start=array("meta_start"),
            courses=words["courses"],
            course_of=array("course_of"),
            langs=array("langs"),
            question_units=array("question_units"),
            answer_terms=array("answer_terms"),
            lexical=lexical,
            dense=dense,
            levels=levels,
        )


class EntryList(Sequence[IndexedEntry]):
    """The entries of segments laid end to end (positions in index order), decoded on
    access: 100k entries need not exist as objects to answer one question."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self._segments = list(segments)
        self._offsets = np.cumsum([0, *(len(s) for s in segments)])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @overload
    def __getitem__(self, position: int) -> IndexedEntry: ...

    @overload
    def __getitem__(self, position: slice) -> list[IndexedEntry]: ...

    def __getitem__(self, position: int | slice) -> IndexedEntry | list[IndexedEntry]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(position)
        part = int(np.searchsorted(self._offsets, position, side="right")) - 1
        return self._segments[part].entry(position - int(self._offsets[part]))

    def __iter__(self) -> Iterator[IndexedEntry]:
        for segment in self._segments:
            for i in range(len(segment)):
                yield segment.entry(i)


# -- building from the database ---------------------------------------------------


def build(session: Session, models: tuple[str, ...], changed_after: int | None = None) -> Segment:
    """The live entries (or, with ``changed_after``, those changed after that knowledge
    version) and their units, read in chunks."""
    live = Entry.deleted_at.is_(None)
    chosen: ColumnElement[bool] = (
        true() if changed_after is None else Entry.changed_in > changed_after
    )
    rows = session.execute(
        select(Entry.id, Entry.slug, Course.code, Entry.question, Entry.content_hash)
        .join(Course)
        .where(live, chosen)
        .order_by(Entry.id)
    ).all()
    entry_ids = np.array([r[0] for r in rows], dtype=np.int64)
    courses = sorted({r[2] for r in rows})
    number = {c: i for i, c in enumerate(courses)}
    metas = [json.dumps([r[1], r[2], r[3], r[4]], ensure_ascii=False).encode() for r in rows]
    meta_start = np.r_[0, np.cumsum([len(m) for m in metas])].astype(np.int64)
    meta = np.frombuffer(b"".join(metas), dtype=np.uint8) if metas else np.zeros(0, np.uint8)
    langs = np.array([sum(1 << lang_code(lang) for lang in r[3]) for r in rows], dtype=np.uint8)
    course_of = np.array([number[r[2]] for r in rows], dtype=np.int32)
    del rows, metas

    def units_query(*columns: Any) -> Select[Any]:
        query = select(IndexUnit.entry_id, _KIND_SQL, IndexUnit.lang, *columns)
        if changed_after is None:
            query = query.join(Entry, Entry.id == IndexUnit.entry_id).where(live)
        else:  # from the few changed entries (a join makes SQLite scan every unit)
            query = query.where(IndexUnit.entry_id.in_(select(Entry.id).where(live, chosen)))
        return query.order_by(IndexUnit.entry_id, _KIND_SQL, IndexUnit.id)

    lexical = _build_lexical(session, units_query(IndexUnit.terms), entry_ids)
    dense: dict[str, Dense] = {}
    for model in models:
        stored_as = case(
            (IndexUnit.kind.in_(QUESTION_KINDS), vector_name(model, "question")),
            else_=vector_name(model, "passage"),
        )
        query = units_query(Embedding.vector).join(
            Embedding,
            (Embedding.text_hash == IndexUnit.text_hash) & (Embedding.model == stored_as),
        )
        dense[model] = _build_dense(session, query, entry_ids)
    entries = len(entry_ids)
    question_units = np.bincount(
        lexical.codes[lexical.codes % KINDS == QUESTION] // KINDS, minlength=entries
    ).astype(np.int32)
    answer_owner = lexical.codes[lexical.answer_rows] // KINDS
    answer_terms = np.bincount(
        answer_owner, weights=lexical.answers.lengths, minlength=entries
    ) / np.maximum(np.bincount(answer_owner, minlength=entries), 1)
    return Segment(
        entry_ids,
        meta,
        meta_start,
        courses,
        course_of,
        langs,
        question_units,
        answer_terms.astype(np.float32),
        lexical,
        dense,
    )


def _chunks(session: Session, query: Select[Any]) -> Iterator[Sequence[Any]]:
    result = session.execute(query.execution_options(yield_per=CHUNK))
    yield from result.partitions()


def _codes(entry_ids: np.ndarray, rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(codes, kept) for (entry_id, kind column, ...) rows: rows of entries not in
    ``entry_ids`` (written after the entries were read) are left out."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    kinds = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    at = np.minimum(np.searchsorted(entry_ids, ids), max(len(entry_ids) - 1, 0))
    kept = (entry_ids[at] == ids) if len(entry_ids) else np.zeros(len(ids), dtype=bool)
    return (at * KINDS + kinds)[kept], kept


def _entry_start(codes: np.ndarray, entries: int) -> np.ndarray:
    return np.searchsorted(codes // KINDS, np.arange(entries + 1)).astype(np.int64)


def _build_lexical(session: Session, query: Select[Any], entry_ids: np.ndarray) -> Lexical:
    codes: list[np.ndarray] = []
    corpora: dict[bool, tuple[dict[str, int], list[np.ndarray], list[int]]] = {
        False: ({}, [], []),
        True: ({}, [], []),
    }
    for rows in _chunks(session, query):
        chunk_codes, kept = _codes(entry_ids, rows)
        codes.append(chunk_codes)
        for row, keep in zip(rows, kept, strict=True):
            if not keep:
                continue
            vocab, tokens, lengths = corpora[row[1] == ANSWER]
            terms = row[3].split()
            tokens.append(
                np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), np.int32, len(terms))
            )
            lengths.append(len(terms))
    all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    is_answer = all_codes % KINDS == ANSWER

    def corpus(answers: bool) -> Postings:
        vocab, tokens, lengths = corpora[answers]
        joined = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int32)
        return Postings.from_ids(list(vocab), joined, np.array(lengths, dtype=np.int64))

    unit_rows = np.flatnonzero(~is_answer)
    return Lexical(
        all_codes,
        _entry_start(all_codes, len(entry_ids)),
        unit_rows,
        np.flatnonzero(is_answer),
        corpus(False),
        corpus(True),
        (all_codes[unit_rows] // KINDS).astype(np.int32),
    )


def _build_dense(session: Session, query: Select[Any], entry_ids: np.ndarray) -> Dense:
    codes, langs, rows, scales = [], [], [], []
    for chunk in _chunks(session, query):
        chunk_codes, kept = _codes(entry_ids, chunk)
        kept_rows = [r for r, k in zip(chunk, kept, strict=True) if k]
        if not kept_rows:
            continue
        matrix = np.frombuffer(b"".join(r[3] for r in kept_rows), dtype="<f4")
        quantized, scale = quantize_rows(matrix.reshape(len(kept_rows), -1))
        codes.append(chunk_codes)
        langs.append(np.array([lang_code(r[2]) for r in kept_rows], dtype=np.uint8))
        rows.append(quantized)
        scales.append(scale)
    if not rows:
        return _empty_dense(len(entry_ids))
    all_codes = np.concatenate(codes)
    return Dense(
        all_codes,
        np.concatenate(langs),
        np.concatenate(rows),
        np.concatenate(scales),
        _entry_start(all_codes, len(entry_ids)),
    )


def _empty_dense(entries: int) -> Dense:
    return Dense(
        np.zeros(0, np.int64),
        np.zeros(0, np.uint8),
        np.zeros((0, 1), np.int8),
        np.zeros(0, np.float32),
        np.zeros(entries + 1, np.int64),
    )
