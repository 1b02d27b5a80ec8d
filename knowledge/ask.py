"""The ask pipeline: normalise, embed, score entries, calibrate, answer or abstain."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.index import IndexedEntry, KnowledgeIndex
from knowledge.lexical import tokens
from knowledge.models import AskLog
from knowledge.store import DEFAULT_MODELS, kb_version
from knowledge.text import detect_lang, normalize

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
LEXICAL = "bm25"  # the lexical signal's name in RetrievalSettings.weights
MULTILINGUAL = embedders.MultilingualUSE.name
MINILM = embedders.MiniLMInt8.name


@dataclass(frozen=True)
class RetrievalSettings:
    """Fusion weights and the calibration of the fused score into a confidence.

    Chosen on the tuning split of ``bench/eval/questions.yaml`` (``bench/retrieval.py``).
    """

    # Per question language: signal -> weight. Chosen by `python -m bench.retrieval --tune`
    # on the tuning split (answered precision >= 0.98 and declines >= 0.95 first, then the
    # most correct decisions). English was re-tuned for the int8 MiniLM (tuning split: all
    # right, where the earlier weights lost one answer and one decline); Japanese keeps the
    # earlier choice, whose tuning-split recall@1 was 0.955 against the re-tune's 0.886 at
    # the same precision and declines. With weight 0, English questions skip USE, unless
    # some entry lacks English (cross-lingual scoring).
    weights: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "en": {MINILM: 0.6, MULTILINGUAL: 0.0, LEXICAL: 0.4},
            "ja": {MINILM: 0.4, MULTILINGUAL: 0.4, LEXICAL: 0.2},
        }
    )
    # An entry stored only in the other language is scored by the multilingual encoder.
    cross_lingual_weight: float = 1.0
    # confidence = sigmoid(slope * (fused - midpoint[key]) + margin_weight[key] * margin):
    # key = the question's language, or "xl" when the best entry is not in that language;
    # margin = how far the entry is ahead of the next best one.
    slope: float = 20.0
    midpoint: dict[str, float] = field(default_factory=lambda: {"en": 0.35, "ja": 0.55, "xl": 0.4})
    margin_weight: dict[str, float] = field(
        default_factory=lambda: {"en": 0.0, "ja": 0.0, "xl": 0.0}
    )
    threshold: float = 0.5  # abstain below this confidence
    ambiguity_margin: float = 0.08  # "did you mean" when the top two are this close
    refresh_interval_s: float = 0.5


@dataclass
class Match:
    entry: IndexedEntry
    score: float  # fused similarity
    confidence: float
    key: str = "en"  # calibration used: the question's language, or "xl" (cross-lingual)


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
        # Same pool; connections checked out from it commit each statement on its own.
        self._autocommit = factory.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")

    # -- index freshness -------------------------------------------------
    @property
    def loaded_index(self) -> KnowledgeIndex | None:
        """The index if one has been loaded (no database access)."""
        return self._index

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
                    for model, n in self._index.missing_vectors.items():
                        log.warning(
                            "%d index units have no %s vector and score 0 under it; "
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
            embedders.get(model).encode(["warm up"])

    # -- scoring ---------------------------------------------------------
    def calibrate(self, score: float, rival: float, key: str) -> float:
        """Confidence in [0, 1] for an entry scoring ``score`` when the best other has ``rival``."""
        s = self.settings
        z = s.slope * (score - s.midpoint[key]) + s.margin_weight[key] * (score - rival)
        return float(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))))

    def signal_scores(
        self, question: str, lang: str, names: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """Per-entry score under each signal (dense models, BM25).

        By default: the signals the language uses, plus the multilingual encoder, which
        scores entries that are not written in the question's language.
        """
        index = self.index()
        out: dict[str, np.ndarray] = {}
        if names is None:
            names = tuple(k for k, w in self.settings.weights[lang].items() if w)
            if not index.has_lang(lang).all():
                names = tuple(dict.fromkeys([*names, MULTILINGUAL]))
        for signal in names:
            if signal == LEXICAL:
                out[signal] = index.lexical_scores(tokens(question))
            elif signal in self.models:
                query = embedders.encode_query(signal, question)
                out[signal] = index.dense_scores(signal, query)
        return out

    def fuse(self, signals: dict[str, np.ndarray], lang: str, index: KnowledgeIndex) -> np.ndarray:
        fused = np.zeros(len(index.entries), dtype=np.float32)
        for signal, scores in signals.items():
            fused += self.settings.weights[lang].get(signal, 0.0) * scores
        other = ~index.has_lang(lang)
        if other.any() and MULTILINGUAL in signals:
            fused[other] = self.settings.cross_lingual_weight * signals[MULTILINGUAL][other]
        return fused

    def matches(
        self, fused: np.ndarray, lang: str, index: KnowledgeIndex, top_k: int
    ) -> list[Match]:
        """The ``top_k`` best entries with calibrated confidences."""
        k = min(max(top_k, 2), len(index.entries))
        top = np.argpartition(-fused, k - 1)[:k]
        top = [int(i) for i in top[np.argsort(-fused[top])] if math.isfinite(fused[i])]
        out = []
        for rank, i in enumerate(top):
            rival = fused[top[1]] if rank == 0 and len(top) > 1 else fused[top[0]]
            rival = float(rival) if len(top) > 1 else 0.0
            key = lang if index.has_lang(lang)[i] else "xl"
            out.append(
                Match(index.entries[i], float(fused[i]), self.calibrate(fused[i], rival, key))
            )
        return out[:top_k]

    def is_close_call(self, matches: list[Match]) -> bool:
        """The runner-up is nearly as good, and would be answered on its own: ask which."""
        if len(matches) < 2:
            return False
        first, second = matches[0], matches[1]
        if first.score - second.score >= self.settings.ambiguity_margin:
            return False
        alone = self.calibrate(second.score, second.score, second.key)
        return alone >= self.settings.threshold

    def rank(
        self, question: str, course: str | None = None, top_k: int = 3, lang: str | None = None
    ) -> list[Match]:
        index = self.index()
        if not index.entries:
            return []
        lang = lang or detect_lang(question)
        fused = self.fuse(self.signal_scores(question, lang), lang, index)
        if course:
            fused[[e.course != course for e in index.entries]] = -np.inf
        return self.matches(fused, lang, index, top_k)

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
        ambiguous = best is not None and not abstained and self.is_close_call(matches)
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
        # Every question is logged, so this is on the hot path: a single INSERT ... RETURNING
        # in autocommit mode saves the BEGIN and COMMIT roundtrips of a session transaction.
        row = insert(AskLog).values(
            question=asked.replace("\x00", ""),
            lang=result.lang,
            course_code=course,
            best_slug=result.matches[0].entry.slug if result.matches else None,
            confidence=result.confidence,
            abstained=result.abstained,
        )
        with self._autocommit.connect() as conn:
            return conn.execute(row.returning(AskLog.id)).scalar_one()
