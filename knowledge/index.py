"""In-memory retrieval index per process: a base segment, the entries changed since, and
the scoring of a question against them.

Nothing is embedded or tokenised here: vectors and terms were stored at write time.
Each signal scores an entry three times: by its best question-like unit (the question in
each language and any aliases), by its best answer paragraph and by its whole answer.
Keeping them apart lets the ranker weigh them, and keeps an entry's many aliases from
lifting its answer scores.

- **Catching up.** The base holds every entry at one knowledge version (mapped from a
  snapshot, or read from the database). An edit makes each process reload only the
  entries changed after the base's version into a small second segment and hide their
  base rows; BM25 statistics are those of the live units (``CorpusStats``). When that
  segment grows past ``delta_max`` entries the base is rebuilt.
- **Large bases.** Up to ``ann_min_units`` unit vectors every row is scored (one int8
  product). Above it, candidates come from an HNSW graph (``knowledge.ann``) and from
  BM25, and only their entries are scored, with the same int8 arithmetic, so an entry's
  scores do not depend on how it was found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from knowledge.ann import Ann
from knowledge.background import Background, EntryLevels, entry_levels
from knowledge.dense import Int8Rows
from knowledge.embedders import inference_threads
from knowledge.lexical import CorpusStats, DocScores, bm25, bm25_matches
from knowledge.segment import (
    ANSWER,
    KINDS,
    PASSAGE,
    QUESTION,
    Dense,
    EntryList,
    IndexedEntry,
    Segment,
    kind_column,
    lang_code,
)

__all__ = [
    "ANSWER",
    "EMPTY",
    "KINDS",
    "PASSAGE",
    "QUESTION",
    "Evidence",
    "Grouping",
    "IndexedEntry",
    "KnowledgeIndex",
    "kind_column",
]

EMPTY = -1.0  # the score of an entry with no unit of a kind (below any cosine or BM25)
ANN_UNITS = 128  # nearest units taken from the graph per question
LEXICAL_UNITS = 128  # best BM25 units taken per corpus per question
LANG_SAMPLE = 4096  # rows whose scores stand for all in the cross-lingual rescaling
SUBSET_MAX_ENTRIES = 5_000  # a course this small is scored entry by entry, exactly

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
        """Of codes in any order; also the order that sorts the units."""
        order = np.argsort(segment, kind="stable")
        return cls.sorted(segment[order]), order

    @classmethod
    def sorted(cls, segment: np.ndarray) -> Grouping:
        """Of codes already in ascending order."""
        segment = np.asarray(segment, dtype=np.int64)
        starts = (
            np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]]) if len(segment) else segment
        )
        return cls(segment, starts)

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


@dataclass
class Evidence:
    """One question's scores for the entries at ``positions`` (ascending index positions)."""

    positions: np.ndarray
    dense: dict[str, np.ndarray]  # model -> (entries, KINDS)
    lexical: np.ndarray  # (entries, KINDS)
    coverage: np.ndarray  # (entries,)
    question_units: np.ndarray
    answer_terms: np.ndarray
    in_language: np.ndarray  # (entries,) bool
    levels: dict[str, EntryLevels] = field(default_factory=dict)  # model -> of the entries


def _unit_ranges(entry_start: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows of the entries at ``positions``, each row's index into ``positions``)."""
    starts = np.asarray(entry_start[positions], dtype=np.int64)
    lengths = np.asarray(entry_start[positions + 1], dtype=np.int64) - starts
    owner = np.repeat(np.arange(len(positions)), lengths)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    rows = np.arange(int(lengths.sum()), dtype=np.int64) - offsets[owner] + starts[owner]
    return rows, owner


def _quantized(query: np.ndarray) -> tuple[np.ndarray, float]:
    """The question as ``Int8Rows`` quantises it: float32 integers and their step.

    Integer dot products of 384 int8 values stay below 2^24, so float32 computes them
    exactly: a row scored here equals the same row scored by the int8 product."""
    step = float(np.abs(query).max()) / 127.0 or 1.0
    return np.round(query / step).astype(np.float32), step


@dataclass(eq=False)
class Base:
    """A base segment and what is derived from it once: it outlives many catch-ups."""

    segment: Segment
    epoch: str
    version: int  # the knowledge version it holds every entry at
    ann: dict[str, Ann] = field(default_factory=dict)  # model -> graph of its rows
    source: str = "database"  # or "snapshot"
    threads: int = 0  # per int8 product (0: EMBED_THREADS, else every core)
    _exact: dict[str, Int8Rows] = field(default_factory=dict, repr=False)
    _groupings: dict[str, Grouping] = field(default_factory=dict, repr=False)
    _samples: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )
    _answer_owner: np.ndarray | None = field(default=None, repr=False)
    _backgrounds: dict[str, tuple[Background, EntryLevels]] = field(
        default_factory=dict, repr=False
    )

    def exact(self, model: str) -> Int8Rows:
        """Every row of ``model``, packed for one int8 product per question."""
        if model not in self._exact:
            d = self.segment.dense[model]
            self._exact[model] = Int8Rows.from_quantized(
                d.rows, d.scale, self.threads or inference_threads()
            )
        return self._exact[model]

    def grouping(self, what: str) -> Grouping:
        """Of the lexical units (``"lexical"``) or of a model's rows."""
        if what not in self._groupings:
            segment = self.segment
            codes = segment.lexical.codes if what == "lexical" else segment.dense[what].codes
            self._groupings[what] = Grouping.sorted(codes)
        return self._groupings[what]

    def sample(self, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fixed random sample of ``model``'s rows: int8 values as float32, scales and
        languages (scored as every row is, so that a sample of all rows is all rows)."""
        if model not in self._samples:
            d = self.segment.dense[model]
            rng = np.random.default_rng(0)
            picked = np.sort(
                rng.choice(len(d.codes), min(LANG_SAMPLE, len(d.codes)), replace=False)
            )
            self._samples[model] = (
                d.rows[picked].astype(np.float32),
                d.scale[picked],
                d.langs[picked],
            )
        return self._samples[model]

    def background(self, model: str) -> tuple[Background, EntryLevels]:
        """``model``'s background sample of question-like rows, and the base entries'
        levels on it (``knowledge.background``): from the snapshot, or computed once."""
        if model not in self._backgrounds:
            fill_levels(self.segment, self.threads or inference_threads())
            self._backgrounds[model] = (
                Background.of(self.segment.dense[model]),
                EntryLevels.from_array(self.segment.levels[model]),
            )
        return self._backgrounds[model]

    def removed_units(self, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Docs of the two BM25 corpora that belong to ``removed`` entries."""
        lex = self.segment.lexical
        if self._answer_owner is None:
            self._answer_owner = lex.codes[lex.answer_rows] // KINDS
        if not removed.any():
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.flatnonzero(removed[lex.unit_owner]), np.flatnonzero(removed[self._answer_owner])


def fill_levels(segment: Segment, threads: int) -> None:
    """Compute the levels a base segment lacks (saved with it in a snapshot)."""
    for model, d in segment.dense.items():
        if model not in segment.levels:
            levels = entry_levels(d, Background.of(d), np.zeros(0, dtype=bool), threads=threads)
            segment.levels[model] = levels.to_array()


class KnowledgeIndex:
    """The live entries: a base's (minus those changed since) and a delta segment's.

    Positions: the base's entries first, then the delta's."""

    def __init__(self, base: Base, version: int, delta: Segment, removed: np.ndarray) -> None:
        self.base, self.version, self.delta, self.removed = base, version, delta, removed
        self.epoch = base.epoch
        segment = base.segment
        nb = len(segment)
        self.entries = EntryList([segment, delta])
        self._live_mask = np.r_[~removed, np.ones(len(delta), dtype=bool)]
        self.live = np.flatnonzero(self._live_mask)
        self.question_units = np.r_[segment.question_units, delta.question_units]
        self.answer_terms = np.r_[segment.answer_terms, delta.answer_terms]
        removed_docs, removed_answers = base.removed_units(removed)
        self.unit_stats = CorpusStats.of(segment.lexical.units, removed_docs, delta.lexical.units)
        self.answer_stats = CorpusStats.of(
            segment.lexical.answers, removed_answers, delta.lexical.answers
        )
        self._delta_grouping = Grouping.sorted(delta.lexical.codes)
        self._lang_masks: dict[str, np.ndarray] = {}
        self._live_row_masks: dict[str, np.ndarray] = {}
        self._levels: dict[str, EntryLevels] = {}
        self._nb = nb

    # -- what is held ----------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.base.segment.dense)

    @property
    def size(self) -> int:
        """Live entries."""
        return len(self.live)

    @property
    def uses_ann(self) -> bool:
        return bool(self.base.ann)

    @property
    def missing_vectors(self) -> dict[str, int]:
        """Model -> live units with no stored vector (scored as absent until `kb import`)."""
        segment = self.base.segment
        units = self._live_units(segment.lexical.codes, self.delta.lexical.codes)
        out = {}
        for model, d in segment.dense.items():
            n = units - self._live_units(d.codes, self.delta.dense[model].codes)
            if n:
                out[model] = n
        return out

    def _live_units(self, base_codes: np.ndarray, delta_codes: np.ndarray) -> int:
        return int((~self.removed[np.asarray(base_codes) // KINDS]).sum()) + len(delta_codes)

    def has_lang(self, lang: str) -> np.ndarray:
        """(positions,) mask of entries written in ``lang`` (cached per language)."""
        if lang not in self._lang_masks:
            self._lang_masks[lang] = np.r_[
                self.base.segment.has_lang(lang), self.delta.has_lang(lang)
            ]
        return self._lang_masks[lang]

    def in_course(self, course: str) -> np.ndarray:
        return np.r_[self.base.segment.in_course(course), self.delta.in_course(course)]

    def levels(self, model: str) -> EntryLevels:
        """Every entry's levels of cosine (``knowledge.background``): the base's as
        computed once, the delta's on the base's background without the entries it
        replaced."""
        if model not in self._levels:
            background, base = self.base.background(model)
            delta = entry_levels(
                self.delta.dense[model],
                background,
                self.removed,
                self._nb,
                self.base.threads or inference_threads(),
            )
            self._levels[model] = EntryLevels(
                np.concatenate([base.mean, delta.mean]),
                np.concatenate([base.spread, delta.spread]),
            )
        return self._levels[model]

    # -- scoring ---------------------------------------------------------------
    def evidence(
        self,
        terms: list[str],
        queries: dict[str, np.ndarray],
        lang: str,
        course: str | None = None,
    ) -> Evidence:
        """Scores of the live entries (of ``course``) for a question: all of them, or on a
        large base, those the graph and BM25 put forward."""
        allowed = self._live_mask if course is None else self._live_mask & self.in_course(course)
        whole = not self.uses_ann
        if whole:
            positions = np.flatnonzero(allowed)
            lexical = self._lexical_scores_whole(terms, positions)
        else:
            matches = self._lexical_matches(terms)
            if course is not None and int(allowed.sum()) <= SUBSET_MAX_ENTRIES:
                positions = np.flatnonzero(allowed)
            else:
                positions = self._candidates(queries, matches[0], allowed)
            lexical = self._lexical_scores_of(matches, positions)
        dense = {m: self._dense_scores(m, q, lang, positions) for m, q in queries.items()}
        return Evidence(
            positions=positions,
            dense=dense,
            lexical=lexical,
            coverage=self._coverage(terms)[positions],
            question_units=self.question_units[positions],
            answer_terms=self.answer_terms[positions],
            in_language=self.has_lang(lang)[positions],
            levels={m: self.levels(m).at(positions) for m in queries},
        )

    def _candidates(
        self,
        queries: dict[str, np.ndarray],
        base_lexical: tuple[DocScores, DocScores],
        allowed: np.ndarray,
    ) -> np.ndarray:
        """The delta's entries, and the base entries of the best units by BM25 (in each
        corpus) and by each graph."""
        segment = self.base.segment
        found = [self._nb + np.arange(len(self.delta))]
        lex = segment.lexical
        for scores, rows in ((base_lexical[0], lex.unit_rows), (base_lexical[1], lex.answer_rows)):
            found.append(lex.codes[rows[scores.top(LEXICAL_UNITS)]] // KINDS)
        # A course filter thins the graph's hits: ask for more in proportion.
        share = max(int(allowed.sum()) / max(len(allowed), 1), 1e-6)
        k = int(min(ANN_UNITS / share, 64 * ANN_UNITS))
        for model, query in queries.items():
            graph = self.base.ann.get(model)
            if graph is not None:
                rows = graph.search(query, k)
                found.append(segment.dense[model].codes[rows] // KINDS)
        positions = np.unique(np.concatenate(found))
        return positions[allowed[positions]]

    def _dense_scores(
        self, model: str, query: np.ndarray, lang: str, positions: np.ndarray
    ) -> np.ndarray:
        """(positions, KINDS): best cosine per entry and unit kind, for a question in ``lang``.

        A multilingual encoder still scores a question higher against unrelated text in
        its own language than against the right answer in the other: on the evaluation
        set, an entry written only in the other language ranked first by cosine for 17 %
        of its questions. So the cosines with units in the other language are put on the
        scale of those in the question's language (the same mean and spread for this
        question, over every row or, with a graph, a fixed sample of base rows), which
        keeps the scale the calibration knows (65 % then).
        """
        base, delta = self.base.segment.dense[model], self.delta.dense[model]
        q, step = _quantized(query)
        own = lang_code(lang)
        nb, nd = self._nb, len(self.delta)
        if not self.uses_ann:  # every row, then the chosen entries
            base_scores = (
                self.base.exact(model).scores(query) if len(base.codes) else np.zeros(0, np.float32)
            )
            scores = np.r_[base_scores, _rows_scores(delta, np.arange(len(delta.codes)), q, step)]
            same = np.r_[np.asarray(base.langs), np.asarray(delta.langs)] == own
            live = self._live_rows(model)
            _rescale(scores, scores[same & live], scores[~same & live], ~same)
            nbu = len(base_scores)
            full = np.r_[
                self.base.grouping(model).best(scores[:nbu], nb),
                Grouping.sorted(delta.codes).best(scores[nbu:], nd),
            ]
            return full[positions]
        # Entry by entry: only the units of the chosen entries.
        sample_rows, sample_scale, sample_langs = self.base.sample(model)
        sample = (sample_rows @ q) * sample_scale * np.float32(step)
        sample_same = sample_langs == own
        parts = (base, delta)

        def score(part: int, rows: np.ndarray, _kinds: np.ndarray) -> np.ndarray:
            dense = parts[part]
            scores = _rows_scores(dense, rows, q, step)
            other = dense.langs[rows] != own
            _rescale(scores, sample[sample_same], sample[~sample_same], other)
            return scores

        return self._best_of_chosen(positions, [(d.entry_start, d.codes) for d in parts], score)

    def _best_of_chosen(
        self,
        positions: np.ndarray,
        units: list[tuple[np.ndarray, np.ndarray]],
        score: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """(positions, KINDS): per entry and unit kind, the best of ``score(part, rows,
        kinds)`` over the units of the entries at ``positions`` only. ``units`` gives
        (entry_start, codes) of the base (part 0) and of the delta (part 1)."""
        out = np.full((len(positions), KINDS), EMPTY, dtype=np.float32)
        in_base = positions < self._nb
        for part, where in ((0, np.flatnonzero(in_base)), (1, np.flatnonzero(~in_base))):
            local = positions[where] - (self._nb if part else 0)
            entry_start, codes = units[part]
            if not len(local) or not len(codes):
                continue
            rows, owner = _unit_ranges(entry_start, local)
            kinds = codes[rows] % KINDS
            out[where] = Grouping.sorted(owner * KINDS + kinds).best(
                score(part, rows, kinds), len(local)
            )
        return out

    def _live_rows(self, model: str) -> np.ndarray:
        """(base rows + delta rows,) mask of the rows of live entries (cached)."""
        if model not in self._live_row_masks:
            codes = np.asarray(self.base.segment.dense[model].codes)
            self._live_row_masks[model] = np.r_[
                ~self.removed[codes // KINDS], np.ones(len(self.delta.dense[model].codes), bool)
            ]
        return self._live_row_masks[model]

    def _lexical_scores_whole(self, terms: list[str], positions: np.ndarray) -> np.ndarray:
        """(positions, KINDS): best normalised BM25 per entry and unit kind, from every
        unit's score."""
        full = []
        for segment, grouping in (
            (self.base.segment, self.base.grouping("lexical")),
            (self.delta, self._delta_grouping),
        ):
            lex = segment.lexical
            units = np.zeros(len(lex.codes), dtype=np.float32)
            units[lex.unit_rows] = bm25(lex.units, self.unit_stats, terms)
            units[lex.answer_rows] = bm25(lex.answers, self.answer_stats, terms)
            full.append(grouping.best(units, len(segment)))
        return np.r_[full[0], full[1]][positions]

    def _lexical_matches(self, terms: list[str]) -> list[tuple[DocScores, DocScores]]:
        """The matching docs of both corpora, for the base and for the delta."""
        return [
            (
                bm25_matches(segment.lexical.units, self.unit_stats, terms),
                bm25_matches(segment.lexical.answers, self.answer_stats, terms),
            )
            for segment in (self.base.segment, self.delta)
        ]

    def _lexical_scores_of(
        self, matches: list[tuple[DocScores, DocScores]], positions: np.ndarray
    ) -> np.ndarray:
        """(positions, KINDS): best normalised BM25 per entry and unit kind, from the
        units of those entries only."""
        lexicals = (self.base.segment.lexical, self.delta.lexical)

        def score(part: int, rows: np.ndarray, kinds: np.ndarray) -> np.ndarray:
            # A unit's doc in its corpus: whole answers in one, the other kinds in the other.
            lex, (units, answers) = lexicals[part], matches[part]
            answer = kinds == ANSWER
            scores = np.empty(len(rows), dtype=np.float32)
            scores[~answer] = units.at(np.searchsorted(lex.unit_rows, rows[~answer]))
            scores[answer] = answers.at(np.searchsorted(lex.answer_rows, rows[answer]))
            return scores

        return self._best_of_chosen(
            positions, [(lex.entry_start, lex.codes) for lex in lexicals], score
        )

    def _coverage(self, terms: list[str]) -> np.ndarray:
        """(positions,): the share of the question's term weight (IDF) each entry's text uses.

        A paraphrase uses the entry's own words or common ones; a question about a
        neighbouring mechanism names something (spectral norm, KV cache) the entry never
        mentions, which costs that term's high IDF.
        """
        nb = self._nb
        covered = np.zeros(nb + len(self.delta), dtype=np.float32)
        total = 0.0
        for term in set(terms):
            weight = self.unit_stats.idf(term)
            total += weight
            for offset, segment in ((0, self.base.segment), (nb, self.delta)):
                found = segment.lexical.units.postings(term)
                if found is not None:
                    # a repeated position is added once: each entry counts a term once
                    owners = np.asarray(segment.lexical.unit_owner[np.asarray(found[0])])
                    covered[offset + owners] += weight
        return covered / total if total else covered


def _rows_scores(dense: Dense, rows: np.ndarray, q: np.ndarray, step: float) -> np.ndarray:
    if not len(rows):
        return np.zeros(0, dtype=np.float32)
    dots = np.asarray(dense.rows[rows], dtype=np.float32) @ q
    return dots * np.asarray(dense.scale[rows]) * np.float32(step)


def _rescale(scores: np.ndarray, own: np.ndarray, across: np.ndarray, other: np.ndarray) -> None:
    """Put ``scores[other]`` on the mean and spread ``own`` has (``across``: the scores
    of other-language rows the spread is measured on), in place."""
    if len(own) > 1 and len(across) > 1:
        scale = own.std() / (across.std() + 1e-6)
        scores[other] = (scores[other] - across.mean()) * scale + own.mean()
