"""The ask pipeline: normalise, embed, score entries, calibrate, answer or abstain."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.index import IndexedEntry, KnowledgeIndex
from knowledge.models import AskLog
from knowledge.store import DEFAULT_MODELS, kb_version
from knowledge.text import detect_lang, normalize

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class RetrievalSettings:
    """Fusion weights and the calibration of the fused score into a confidence.

    Chosen on the tuning split of ``bench/eval/questions.yaml`` (``bench/retrieval.py``).
    """

    # Per question language: model -> weight. MiniLM is English-only, so Japanese relies
    # on the multilingual encoder.
    weights: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "en": {embedders.MiniLM.name: 0.6, embedders.MultilingualUSE.name: 0.4},
            "ja": {embedders.MultilingualUSE.name: 1.0},
        }
    )
    # confidence = sigmoid(slope * (fused - midpoint[lang]))
    slope: float = 20.0
    midpoint: dict[str, float] = field(default_factory=lambda: {"en": 0.45, "ja": 0.6})
    threshold: float = 0.5  # abstain below this confidence
    ambiguity_margin: float = 0.08  # "did you mean" when the top two are this close
    refresh_interval_s: float = 0.5


@dataclass
class Match:
    entry: IndexedEntry
    score: float  # fused similarity
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
        settings: RetrievalSettings | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
    ) -> None:
        self.factory = factory
        self.settings = settings or RetrievalSettings()
        self.models = models
        self._index: KnowledgeIndex | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # -- index freshness -------------------------------------------------
    def index(self) -> KnowledgeIndex:
        now = time.monotonic()
        if self._index is None or now - self._checked_at >= self.settings.refresh_interval_s:
            self.refresh()
        assert self._index is not None
        return self._index

    def refresh(self, force: bool = False) -> KnowledgeIndex:
        with self._lock:
            with self.factory() as session:
                version, _ = kb_version(session)
                if force or self._index is None or self._index.version != version:
                    self._index = KnowledgeIndex.load(session, self.models, version)
            self._checked_at = time.monotonic()
            return self._index

    def warm_up(self) -> None:
        """Load the index and the embedders' weights before the first question."""
        self.refresh()
        for model in self.models:
            embedders.get(model).encode(["warm up"])

    # -- scoring ---------------------------------------------------------
    def confidence(self, fused: np.ndarray, lang: str) -> np.ndarray:
        s = self.settings
        return 1.0 / (1.0 + np.exp(-s.slope * (fused - s.midpoint[lang])))

    def rank(
        self, question: str, course: str | None = None, top_k: int = 3, lang: str | None = None
    ) -> list[Match]:
        index = self.index()
        if not index.entries:
            return []
        lang = lang or detect_lang(question)
        fused = np.zeros(len(index.entries), dtype=np.float32)
        for model, weight in self.settings.weights[lang].items():
            if weight and model in self.models:
                query = embedders.get(model).encode([question])[0]
                fused += weight * index.entry_scores(model, query)
        if course:
            fused[[e.course != course for e in index.entries]] = -np.inf
        k = min(top_k, len(index.entries))
        top = np.argpartition(-fused, k - 1)[:k]
        top = top[np.argsort(-fused[top])]
        conf = self.confidence(fused[top], lang)
        return [
            Match(index.entries[i], float(fused[i]), float(c))
            for i, c in zip(top, conf, strict=True)
            if math.isfinite(fused[i])
        ]

    # -- the pipeline ----------------------------------------------------
    def ask(
        self,
        question: str,
        course: str | None = None,
        lang: str | None = None,
        top_k: int = 3,
        log: bool = True,
    ) -> AskResult:
        text = normalize(question)
        if not text:
            raise QuestionError("empty_question", "The question is empty.")
        if len(text) > MAX_QUESTION_CHARS:
            raise QuestionError(
                "question_too_long", f"The question is longer than {MAX_QUESTION_CHARS} characters."
            )
        lang = lang or detect_lang(text)
        # Scoring follows the script actually used; `lang` only picks the answer's language.
        matches = self.rank(text, course, max(top_k, 2), detect_lang(text))
        best = matches[0] if matches else None
        confidence = best.confidence if best else 0.0
        abstained = confidence < self.settings.threshold
        ambiguous = (
            not abstained
            and len(matches) > 1
            and matches[1].confidence >= self.settings.threshold
            and best is not None
            and best.score - matches[1].score < self.settings.ambiguity_margin
        )
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
            result.ask_id = self._log(result, question.strip(), course)
        return result

    def _log(self, result: AskResult, asked: str, course: str | None) -> int:
        with self.factory() as session, session.begin():
            row = AskLog(
                question=asked.replace("\x00", ""),
                lang=result.lang,
                course_code=course,
                best_slug=result.matches[0].entry.slug if result.matches else None,
                confidence=result.confidence,
                abstained=result.abstained,
            )
            session.add(row)
            session.flush()
            return row.id
