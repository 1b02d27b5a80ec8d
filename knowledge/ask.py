"""The ask pipeline: normalise, embed, score entries, calibrate, answer or abstain."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.entry_store import kb_version
from knowledge.index import IndexedEntry, KnowledgeIndex
from knowledge.lexical import tokens
from knowledge.ranking import LEXICAL, Decision, RetrievalModel, Signals, fill_missing
from knowledge.tables import AskLog
from knowledge.text import detect_lang, normalize

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
# A declined question is shown only entries at least this close as related: below it
# (logistics, other subjects: about 0.001-0.004 on the seed) a suggestion is noise.
RELATED_MIN_CONFIDENCE = 0.01
REFRESH_INTERVAL_S = 0.5  # how often a process checks the knowledge version


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


class QuestionError(ValueError):
    """The question cannot be asked (empty or too long)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Retriever:
    """Holds this process's index and refreshes it when the knowledge base changes."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        model: RetrievalModel | None = None,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
    ) -> None:
        self.factory = factory
        self.model = model or RetrievalModel.load()
        self.models = self.model.dense_models()
        self.refresh_interval_s = refresh_interval_s
        self._index: KnowledgeIndex | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
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
                version, _ = kb_version(session)
                if force or self._index is None or self._index.version != version:
                    self._index = KnowledgeIndex.load(session, self.models, version)
                    for model, n in self._index.missing_vectors.items():
                        log.warning(
                            "%d index units have no %s vector and are not scored by it; "
                            "run `flask --app service kb import` or `kb reindex`",
                            n,
                            model,
                        )
            self._checked_at = time.monotonic()
            return self._index

    def warm_up(self) -> None:
        """Load the index and the embedders' weights before the first question."""
        self.refresh()
        for model in self.models:
            embedders.encode_query(model, "warm up")
        tokens("ウォームアップ warm up")

    # -- scoring ---------------------------------------------------------
    def signals(self, question: str, lang: str | None = None) -> Signals:
        """Every entry's evidence for ``question`` (normalised text)."""
        index = self.index()
        lang = lang or detect_lang(question)
        terms = tokens(question)
        scores: dict[str, np.ndarray] = {}
        for signal in self.model.signals:
            if signal == LEXICAL:
                raw = index.lexical_scores(terms)
            else:
                raw = index.dense_scores(signal, embedders.encode_query(signal, question), lang)
            scores[signal] = fill_missing(raw)
        return Signals(
            scores=scores,
            coverage=index.lexical.coverage(terms),
            question_units=index.lexical.question_units,
            answer_terms=index.lexical.answer_terms,
            in_language=index.has_lang(lang),
            lang=lang,
            chars=len(question),
        )

    def matches(
        self, signals: Signals, index: KnowledgeIndex, top_k: int, allowed: np.ndarray | None
    ) -> tuple[list[Match], Decision | None]:
        """The ``top_k`` best entries, each with its confidence, and the decision."""
        rank = self.model.ranker.scores(signals)
        if allowed is not None:
            rank[~allowed] = -np.inf
        k = min(top_k, int(np.isfinite(rank).sum()))
        if k == 0:
            return [], None
        best = np.argpartition(-rank, k - 1)[:k]
        top = [int(i) for i in best[np.argsort(-rank[best], kind="stable")]]
        matches = [
            Match(
                index.entries[i],
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
        if not index.entries:
            return [], None
        signals = self.signals(question, lang)
        allowed = None
        if course:
            allowed = np.array([e.course == course for e in index.entries], dtype=bool)
        return self.matches(signals, index, top_k, allowed)

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
        )
        if log:
            # TAs see the question as the student typed it, not its normalised form.
            result.ask_id = self._log(result, question.strip(), course, client)
        return result

    def _log(self, result: AskResult, asked: str, course: str | None, client: str | None) -> int:
        # Every question is logged, so this is on the hot path: a single INSERT ... RETURNING
        # in autocommit mode saves the BEGIN and COMMIT roundtrips of a session transaction.
        row = insert(AskLog).values(
            question=asked.replace("\x00", ""),
            lang=result.lang,
            course_code=course,
            best_slug=result.matches[0].entry.slug if result.matches else None,
            confidence=result.confidence,
            abstained=result.abstained,
            client=client,
        )
        with self._autocommit.connect() as conn:
            return conn.execute(row.returning(AskLog.id)).scalar_one()
