"""The ask pipeline: normalise, embed, score entries, calibrate, answer or abstain."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders, index_sync, snapshot, token_match
from knowledge.entry_store import kb_epoch
from knowledge.index import Base, IndexedEntry, KnowledgeIndex
from knowledge.index_sync import IndexOptions
from knowledge.lexical import tokens
from knowledge.ranking import (
    LEXICAL,
    TOKEN_CANDIDATES,
    Decision,
    RetrievalModel,
    Signals,
    fill_missing,
)
from knowledge.settings import settings
from knowledge.tables import AskLog
from knowledge.text import detect_lang, normalize

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
REFRESH_INTERVAL_S = 0.5  # how often a process checks the knowledge version
SNAPSHOT_CHECK_S = 10.0  # how often it looks for a snapshot worth switching to
# One statement for every logged question, its values bound at execution: building
# ``insert().values(...)`` per question took about a quarter of a millisecond (measured here).
LOG_ROW = insert(AskLog).returning(AskLog.id)


@dataclass
class Match:
    entry: IndexedEntry
    score: float  # rank score (comparable within one question only)
    # The probability that this entry answers the question; for a runner-up, were the
    # entries ranked above it not there (an answer in its own right?).
    confidence: float


@dataclass
class AskResult:
    question: str
    lang: str
    abstained: bool
    confidence: float
    best: Match | None
    matches: list[Match]
    ambiguous: bool
    ask_id: int | None = None
    # Declined: the matches close enough to show as related (``RetrievalModel.related_min``)
    related: list[Match] = field(default_factory=list)


class QuestionError(ValueError):
    """The question cannot be asked (empty or too long)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Retriever:
    """Holds this process's index and keeps it at the knowledge version.

    Every ``refresh_interval_s`` a question checks the version (one small query). An
    edit is caught up entry by entry (``knowledge.index_sync.catch_up``); a new epoch
    or a first load maps a snapshot or reads the database. Slow work a large index
    needs (its graph, a rebuilt base once many entries have changed) runs on a
    background thread while the current index keeps answering.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        model: RetrievalModel | None = None,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
        options: IndexOptions | None = None,
        background_interval_s: float = SNAPSHOT_CHECK_S,
    ) -> None:
        self.factory = factory
        self.model = model or RetrievalModel.load()
        self.models = self.model.dense_models()
        self.token_states = token_match.shared(self.model, settings().TOKEN_MATCH_ENTRIES)
        self.refresh_interval_s = refresh_interval_s
        self.background_interval_s = background_interval_s
        self.options = options or IndexOptions()
        self._index: KnowledgeIndex | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._background: threading.Thread | None = None
        self._background_at = -background_interval_s  # when background work last started
        self._ready: Base | None = None  # a better base, built or found in the background
        # Same pool; connections checked out from it commit each statement on its own.
        self._autocommit = factory.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")

    # -- index freshness -------------------------------------------------
    @property
    def loaded_index(self) -> KnowledgeIndex | None:
        """The index if one has been loaded (no database access)."""
        return self._index

    def index(self) -> KnowledgeIndex:
        now = time.monotonic()
        if self._index is None or now - self._checked_at >= self.refresh_interval_s:
            self.refresh()
        assert self._index is not None
        return self._index

    def refresh(self, force: bool = False) -> KnowledgeIndex:
        with self._lock:
            with self.factory() as session:
                epoch, version = kb_epoch(session)
                index, ready = self._index, self._ready
                self._ready = None
                if force or index is None or index.epoch != epoch:
                    index = index_sync.load(session, self.models, self.options)
                    self._warn_missing(index)
                elif ready is not None and ready.epoch == epoch:
                    index = index_sync.on_base(session, ready, version, self.options)
                elif index.version != version:
                    index = index_sync.catch_up(session, index, version, self.options)
                self._index = index
            self._checked_at = time.monotonic()
        self._start_background(index)
        return index

    def _warn_missing(self, index: KnowledgeIndex) -> None:
        for model, n in index.missing_vectors.items():
            log.warning(
                "%d index units have no %s vector and are not scored by it; "
                "run `flask --app service kb import` or `kb reindex`",
                n,
                model,
            )

    def _start_background(self, index: KnowledgeIndex) -> None:
        """Work a large index needs, on one background thread at a time, at most every
        ``background_interval_s``: its graph, a new base once many entries changed, or a snapshot
        another process wrote that saves this one either."""
        options = self.options
        wanted = index_sync.needs_graph(index, options) or (
            len(index.delta) > options.delta_max // 2
        )
        now = time.monotonic()
        if (
            options.snapshot_dir is None
            or not wanted
            or now - self._background_at < self.background_interval_s
            or (self._background is not None and self._background.is_alive())
        ):
            return
        self._background_at = now
        self._background = threading.Thread(target=self._improve, args=(index,), daemon=True)
        self._background.start()

    def _improve(self, index: KnowledgeIndex) -> None:
        options = self.options
        try:
            if index_sync.needs_rebase(index, options) or index_sync.needs_graph(index, options):
                with snapshot.try_build_lock(options.snapshot_dir) as mine:
                    if mine and index_sync.better_snapshot(index, options) is None:
                        if index_sync.needs_rebase(index, options):
                            log.info(
                                "%d entries changed since the index base: rebuilding it",
                                len(index.delta),
                            )
                            index_sync.build_snapshot(self.factory, self.models, options)
                        else:
                            log.info("building the nearest-neighbour graph of the index")
                            index_sync.add_graph(index, options)
            path = index_sync.better_snapshot(index, options)
            base = index_sync.open_base(path, index.epoch, options) if path else None
            if base is not None:
                self._ready = base  # the next refresh catches it up and answers from it
                self._background_at = 0.0
        except Exception:  # the current index goes on answering; try again later
            log.exception("background index work failed")

    def wait_for_background(self, timeout: float | None = None) -> None:
        """Until background index work has ended (tests, benchmarks, ``kb`` commands)."""
        if self._background is not None:
            self._background.join(timeout)

    def warm_up(self) -> None:
        """Load the index and the embedders' weights before the first question, and the
        entries' token states where they are used."""
        index = self.refresh()
        for model in self.models:
            embedders.encode_query(model, "warm up")
        tokens("ウォームアップ warm up")
        if self._with_tokens(index):
            assert self.token_states is not None
            self.token_states.get(self.factory, [index.entries[int(i)] for i in index.live])

    def _with_tokens(self, index: KnowledgeIndex) -> bool:
        states = self.token_states
        return states is not None and 0 < index.size <= states.max_entries

    # -- scoring ---------------------------------------------------------
    def signals(self, question: str, lang: str | None = None) -> Signals:
        """Every live entry's evidence for ``question`` (normalised text), in position
        order, the token recall of every entry included (where it is used)."""
        index = self.index()
        signals, positions = self._evidence(index, question, lang, None)
        self._token_recall(signals, index, positions, np.arange(len(positions)))
        return signals

    def _token_recall(
        self, signals: Signals, index: KnowledgeIndex, positions: np.ndarray, which: np.ndarray
    ) -> None:
        """Fill ``signals.token_recall`` and ``token_missed`` for the entries ``which`` (rows
        of ``signals``)."""
        question = signals.question_states
        if question is None or self.token_states is None:
            return
        entries = [index.entries[int(positions[i])] for i in which]
        found = np.full(len(positions), np.nan)
        missed = np.full(len(positions), np.nan)
        weights = signals.question_weights
        states = self.token_states.get(self.factory, entries)
        for i, pair in zip(which, token_match.match_each(question, states, weights), strict=True):
            found[i], missed[i] = pair
        signals.token_recall, signals.token_missed = found, missed

    def _evidence(
        self, index: KnowledgeIndex, question: str, lang: str | None, course: str | None
    ) -> tuple[Signals, np.ndarray]:
        """Evidence for the entries the index puts forward, and their positions."""
        lang = lang or detect_lang(question)
        terms = tokens(question)
        question_states = question_weights = None
        queries = {}
        for m in self.models:
            if m == self.model.token_model and self._with_tokens(index):
                assert self.token_states is not None
                queries[m], question_tokens = embedders.encode_query_tokens(m, question)
                space = self.token_states.space
                question_states = space.project(question_tokens.states)
                question_weights = space.weights(question_tokens.ids)
            else:
                queries[m] = embedders.encode_query(m, question)
        found = index.evidence(terms, queries, lang, course)
        scores = {
            signal: fill_missing(found.lexical if signal == LEXICAL else found.dense[signal])
            for signal in self.model.signals
        }
        signals = Signals(
            scores=scores,
            coverage=found.coverage,
            question_units=found.question_units,
            answer_terms=found.answer_terms,
            in_language=found.in_language,
            lang=lang,
            chars=len(question),
            terms=len(set(terms)),
            question_states=question_states,
            question_weights=question_weights,
            levels=found.levels,
        )
        return signals, found.positions

    def matches(
        self, signals: Signals, index: KnowledgeIndex, positions: np.ndarray, top_k: int
    ) -> tuple[list[Match], Decision | None]:
        """The ``top_k`` best entries, each with its confidence, and the decision."""
        rank = self.model.ranker.scores(signals)
        k = min(top_k, len(rank))
        if k == 0:
            return [], None
        n = min(TOKEN_CANDIDATES, len(rank))
        self._token_recall(signals, index, positions, np.argpartition(-rank, n - 1)[:n])
        best = np.argpartition(-rank, k - 1)[:k]
        top = [int(i) for i in best[np.argsort(-rank[best], kind="stable")]]
        matches = [
            Match(
                index.entries[int(positions[i])],
                float(rank[i]),
                self.model.confidence_of(signals, rank, i, ignore=top[:position]),
            )
            for position, i in enumerate(top)
        ]
        second = matches[1].confidence if len(matches) > 1 else None
        return matches, self.model.decision(matches[0].confidence, second)

    def rank(
        self, question: str, course: str | None = None, top_k: int = 3, lang: str | None = None
    ) -> list[Match]:
        return self._ranked(question, course, top_k, lang)[0]

    def _ranked(
        self, question: str, course: str | None, top_k: int, lang: str | None
    ) -> tuple[list[Match], Decision | None]:
        index = self.index()
        if not index.size:
            return [], None
        signals, positions = self._evidence(index, question, lang, course)
        return self.matches(signals, index, positions, top_k)

    # -- the pipeline ----------------------------------------------------
    def ask(
        self,
        question: str,
        course: str | None = None,
        lang: str | None = None,
        top_k: int = 3,
        log: bool = True,
        client: str | None = None,
    ) -> AskResult:
        text = normalize(question.replace("\x00", ""))
        if not text:
            raise QuestionError("empty_question", "The question is empty.")
        if len(text) > MAX_QUESTION_CHARS:
            raise QuestionError(
                "question_too_long", f"The question is longer than {MAX_QUESTION_CHARS} characters."
            )
        # Scoring follows the language of the question's grammar; `lang` only picks the
        # answer's language.
        asked_in = detect_lang(text)
        lang = lang or asked_in
        matches, decision = self._ranked(text, course, max(top_k, 2), asked_in)
        best = matches[0] if matches else None
        confidence = decision.confidence if decision else 0.0
        abstained = not (decision and decision.answer)
        ambiguous = bool(decision and decision.ambiguous)
        result = AskResult(
            question=text,
            lang=lang,
            abstained=abstained,
            confidence=confidence,
            best=None if abstained else best,
            matches=matches[:top_k],
            ambiguous=ambiguous,
            related=[m for m in matches[:top_k] if m.confidence >= self.model.related_min]
            if abstained
            else [],
        )
        if log:
            # TAs see the question as the student typed it, not its normalised form.
            result.ask_id = self._log(result, question.strip(), course, client)
        return result

    def _log(self, result: AskResult, asked: str, course: str | None, client: str | None) -> int:
        # Every question is logged, so this is on the hot path: a single INSERT ... RETURNING
        # in autocommit mode saves the BEGIN and COMMIT roundtrips of a session transaction.
        row = {
            "question": asked.replace("\x00", ""),
            "lang": result.lang,
            "course_code": course,
            "best_slug": result.matches[0].entry.slug if result.matches else None,
            "confidence": result.confidence,
            "abstained": result.abstained,
            "client": client,
        }
        with self._autocommit.connect() as conn:
            return conn.execute(LOG_ROW, row).scalar_one()
