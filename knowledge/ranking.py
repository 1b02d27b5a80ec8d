"""Which entry a question asks for, and how sure to be: two small fitted models.

Signals (``Signals``) score every entry: the multilingual encoder's cosine and BM25, each
by the entry's best question-like unit, best answer paragraph and whole answer, plus the
share of the question's term weight the entry's text covers.

- The ranker is linear in the six signal scores. Its weights are a conditional logit
  (softmax over entries) fitted on the tuning half of the evaluation set.
- The confidence is a logistic model of whether the ranked-first entry is the right
  answer, from how strong that entry's evidence is and how far it is ahead of the
  runner-up, overall and signal by signal, and from its token recall (how much of the
  question the entry's own text covers, token by token: ``knowledge.token_match``).
  Margins, the agreement of the signals and the token recall are what tell a paraphrase
  of an entry from a question about a neighbouring mechanism that shares its words. A
  fallback confidence without the token recall decides where it is not computed.

Both are fitted by ``python -m bench.retrieval --tune`` and stored in
``retrieval_model.json`` beside this module; nothing here is tuned by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.background import EntryLevels
from knowledge.index import ANSWER, EMPTY, KINDS, PASSAGE, QUESTION

MODEL_FILE = Path(__file__).with_name("retrieval_model.json")
KIND_NAMES = {QUESTION: "q", PASSAGE: "p", ANSWER: "a"}
LEXICAL = "bm25"
TOKEN_RECALL = "tok"
TOKEN_MISSED = "tok_missed"  # the share of the question no entry token comes near
TOKEN_FEATURES = (TOKEN_RECALL, TOKEN_MISSED)
STANDARD = ("qz", "pz", "az")  # a dense score of each kind standardised on the entry's level
RELATED_MIN = 0.01  # the related cut of a model fitted before it was fitted
TOKEN_CANDIDATES = 3  # entries by rank whose token recall is computed (the rivals it has)


@dataclass
class Signals:
    """Per-entry evidence for one question."""

    scores: dict[str, np.ndarray]  # signal -> (entries, KINDS)
    coverage: np.ndarray  # (entries,)
    question_units: np.ndarray  # (entries,) question-like units of each entry
    answer_terms: np.ndarray  # (entries,) length of each entry's answer, in terms
    in_language: np.ndarray  # (entries,) bool: entry written in the question's language
    lang: str
    chars: int
    terms: int  # distinct search terms of the question
    # (entries,) token recall (``knowledge.token_match``), NaN where not computed; None
    # where the knowledge base is scored without it
    token_recall: np.ndarray | None = None
    token_missed: np.ndarray | None = None  # (entries,) with it: ``token_match.match``
    question_states: np.ndarray | None = None  # the question's centred token states
    question_weights: np.ndarray | None = None  # and their weights (TokenSpace.weights)
    # model -> each entry's levels of cosine per unit kind (``knowledge.background``)
    levels: dict[str, EntryLevels] = field(default_factory=dict)
    _standard: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def column(self, name: str) -> np.ndarray:
        """A per-entry feature by name: ``<signal>:<q|p|a|x>`` (x: the best of the three),
        ``<model>:<qz|pz|az>`` (a score standardised on the entry's own level), ``cov``,
        ``units`` or ``answer_length``."""
        if "*" in name:  # an interaction of two features
            left, right = name.split("*", 1)
            return self.column(left) * self.column(right)
        if name == "cov":
            return self.coverage
        if name in TOKEN_FEATURES:
            column = self.token_recall if name == TOKEN_RECALL else self.token_missed
            if column is None:
                raise ValueError("no token recall computed for this question")
            return column
        if name == "xl":  # the entry is not written in the question's language
            return (~self.in_language).astype(np.float64)
        if name == "units":  # many phrasings lift an entry's best question score by chance
            return np.log1p(self.question_units.astype(np.float64))
        if name == "answer_length":  # a long answer matches more words of any question
            return np.log1p(self.answer_terms.astype(np.float64))
        signal, kind = name.rsplit(":", 1)
        if kind in STANDARD:  # qz, pz, az: computed once per question
            if signal not in self._standard:
                self._standard[signal] = self.levels[signal].standardise(self.scores[signal])
            return self._standard[signal][:, STANDARD.index(kind)]
        if kind == "x":  # the entry's best evidence of any kind
            s = self.scores[signal]  # column by column: far faster than max(axis=1)
            return np.maximum(np.maximum(s[:, 0], s[:, 1]), s[:, 2])
        return self.scores[signal][:, "qpa".index(kind)]


def fill_missing(scores: np.ndarray) -> np.ndarray:
    """Scores with EMPTY cells (an entry without units of a kind) set to that kind's median.

    An entry whose answer is one short line has no paragraph units; the median over the
    other entries is neutral evidence, where EMPTY would count as strong evidence against.
    """
    empty = scores <= EMPTY
    if not empty.any():
        return scores
    out = scores.copy()
    for kind in range(KINDS):
        column = out[:, kind]
        present = ~empty[:, kind]
        column[~present] = float(np.median(column[present])) if present.any() else 0.0
    return out


@dataclass(frozen=True)
class Ranker:
    features: tuple[str, ...]
    weights: np.ndarray

    def scores(self, signals: Signals) -> np.ndarray:
        """(entries,) rank score of every entry."""
        out = np.zeros(len(signals.coverage), dtype=np.float64)
        for name, weight in zip(self.features, self.weights, strict=True):
            out += weight * signals.column(name)
        return out


def candidate_features(
    signals: Signals,
    rank: np.ndarray,
    candidate: int,
    names: tuple[str, ...],
    ignore: Sequence[int] = (),
) -> np.ndarray:
    """The confidence model's inputs for ``candidate``; every other entry (but those in
    ``ignore``) is a rival."""
    others = np.ones(len(rank), dtype=bool)
    others[candidate] = False
    others[list(ignore)] = False
    return np.array([_feature(signals, rank, candidate, others, n) for n in names])


def _feature(
    signals: Signals, rank: np.ndarray, candidate: int, others: np.ndarray, name: str
) -> float:
    """One confidence input: ``<column>``, ``<column>_m`` (its margin over the best
    rival), a scalar of the question or candidate, or ``<a>*<b>`` (a product)."""
    if "*" in name:
        left, right = name.split("*", 1)
        return _feature(signals, rank, candidate, others, left) * _feature(
            signals, rank, candidate, others, right
        )
    margin = name.endswith("_m")
    base = name[:-2] if margin else name
    if base in SCALARS:
        return _scalar(signals, candidate, base)
    column = rank if base == "rank" else signals.column(base)
    if base in TOKEN_FEATURES:  # computed for the first few by rank, in the service as here
        column = _first_by_rank(column, rank, TOKEN_CANDIDATES)
    value = float(column[candidate])
    if margin:
        rivals = column[others]
        rivals = rivals[np.isfinite(rivals)]
        value -= float(rivals.max()) if len(rivals) else 0.0
    return value


def _first_by_rank(column: np.ndarray, rank: np.ndarray, n: int) -> np.ndarray:
    """``column`` with every entry but the ``n`` highest ranked set to NaN."""
    if len(rank) <= n:
        return column
    out = np.full(len(column), np.nan)
    first = np.argpartition(-rank, n - 1)[:n]
    out[first] = column[first]
    return out


def _scalar(signals: Signals, candidate: int, name: str) -> float:
    if name == "ja":
        return float(signals.lang == "ja")
    if name == "question_units":  # many aliases lift an entry's best score by chance
        return math.log1p(float(signals.question_units[candidate]))
    if name == "terms":  # one matched term covers all of a one-term question
        return math.log1p(signals.terms)
    return math.log1p(signals.chars)


SCALARS = ("ja", "question_units", "chars", "terms")


@dataclass(frozen=True)
class Confidence:
    """A logistic model of the standardised inputs."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, x: np.ndarray) -> float:
        return _sigmoid(float(((x - self.mean) / self.scale) @ self.coef + self.intercept))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": _floats(self.mean),
            "scale": _floats(self.scale),
            "coef": _floats(self.coef),
            "intercept": round(self.intercept, 6),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Confidence:
        return cls(
            tuple(raw["features"]),
            np.array(raw["mean"]),
            np.array(raw["scale"]),
            np.array(raw["coef"]),
            float(raw["intercept"]),
        )


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass(frozen=True)
class TokenSpace:
    """Where token states are compared: centred on ``mean``, the mean state of the tuning
    half's questions, and L2-normalised; and how much each question token counts: its
    inverse document frequency over those questions (``idf``, by token id; an id they do
    not hold gets ``idf_unseen``), so that a rare term outweighs the words every question
    has. (Projected on their 128 principal directions as well, a third of the arithmetic,
    the threshold rule's worst shortfall out of fold on the tuning half was 0.949 against
    0.955: not kept.)"""

    mean: np.ndarray  # (dim,)
    idf: dict[int, float]
    idf_unseen: float

    def project(self, states: np.ndarray) -> np.ndarray:
        """Rows centred and L2-normalised (float32)."""
        x = np.asarray(states, dtype=np.float32) - self.mean
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def weights(self, ids: Sequence[int]) -> np.ndarray:
        return np.array([self.idf.get(i, self.idf_unseen) for i in ids], dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": _floats(self.mean),
            "idf_unseen": round(self.idf_unseen, 4),
            "idf": {str(k): round(v, 4) for k, v in sorted(self.idf.items())},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenSpace:
        return cls(
            np.array(raw["mean"], dtype=np.float32),
            {int(k): float(v) for k, v in raw.get("idf", {}).items()},
            float(raw.get("idf_unseen", 1.0)),  # no idf: every token counts alike
        )


@dataclass(frozen=True)
class Decision:
    """What to do with a question, from its first two entries."""

    confidence: float
    answer: bool
    ambiguous: bool  # the runner-up is an answer in its own right: ask which was meant


@dataclass(frozen=True)
class RetrievalModel:
    """The fitted ranker and confidence, and the confidence needed to answer."""

    signals: tuple[str, ...]  # dense models and "bm25", in the order scored
    ranker: Ranker
    confidence: Confidence
    threshold: float  # answer when the confidence reaches it
    fitted: dict[str, Any]  # what it was fitted on (for the record)
    # Where no token recall is computed (a knowledge base larger than the cache): the
    # confidence without it, its intercept shifted so that the same threshold applies.
    fallback: Confidence | None = None
    tokens: TokenSpace | None = None  # where the token recall compares token states
    # A declined question is shown as related only entries with at least this confidence:
    # below it (where logistics and other subjects fall) a suggestion is noise.
    related_min: float = RELATED_MIN

    @property
    def uses_tokens(self) -> bool:
        """Whether questions get a token recall (the model has a space for the states)."""
        return self.tokens is not None

    @property
    def token_model(self) -> str | None:
        """The encoder whose token states give the token recall (the first dense model)."""
        return self.dense_models()[0] if self.uses_tokens else None

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> RetrievalModel:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RetrievalModel:
        return cls(
            signals=tuple(raw["signals"]),
            ranker=Ranker(tuple(raw["rank"]["features"]), np.array(raw["rank"]["weights"])),
            confidence=Confidence.from_dict(raw["confidence"]),
            threshold=float(raw["threshold"]),
            fitted=dict(raw.get("fitted", {})),
            fallback=Confidence.from_dict(raw["fallback"]) if "fallback" in raw else None,
            tokens=TokenSpace.from_dict(raw["tokens"]) if "tokens" in raw else None,
            related_min=float(raw.get("related_min", RELATED_MIN)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "signals": list(self.signals),
            "rank": {
                "features": list(self.ranker.features),
                "weights": _floats(self.ranker.weights),
            },
            "confidence": self.confidence.to_dict(),
            "threshold": round(self.threshold, 4),
            "related_min": round(self.related_min, 4),
            "fitted": self.fitted,
            **({"fallback": self.fallback.to_dict()} if self.fallback else {}),
            **({"tokens": self.tokens.to_dict()} if self.tokens is not None else {}),
        }

    def dense_models(self) -> tuple[str, ...]:
        return tuple(s for s in self.signals if s != LEXICAL)

    def confidence_of(
        self, signals: Signals, rank: np.ndarray, candidate: int, ignore: Sequence[int] = ()
    ) -> float:
        """P(``candidate`` answers the question); with ``ignore``, as if those entries did
        not exist. The model was fitted on first-ranked entries, so a runner-up is judged
        without the entries ranked above it: is it a good answer in its own right?"""
        confidence = self.confidence
        if _needs_tokens(confidence):
            x = None
            if signals.token_recall is not None:
                x = candidate_features(signals, rank, candidate, confidence.features, ignore)
            if x is not None and np.isfinite(x).all():
                return confidence.probability(x)
            # No token recall for this question (a large knowledge base), or none for
            # this candidate (ranked below the entries it is computed for)
            if self.fallback is None:
                raise ValueError("the model needs token recall and has no fallback")
            confidence = self.fallback
        x = candidate_features(signals, rank, candidate, confidence.features, ignore)
        return confidence.probability(x)

    def decide(
        self, signals: Signals, rank: np.ndarray, first: int, second: int | None
    ) -> Decision:
        """Answer with ``first`` or decline; when answering, ask which one was meant if
        ``second`` would be answered too with ``first`` left out.

        (Also answering when each of two close entries clears the threshold only with the
        other left out was measured: on the evaluation set it fired twice, both times
        with the wrong entry first, so a close call stays a decline.)
        """
        conf = self.confidence_of(signals, rank, first)
        if conf < self.threshold or second is None:
            return self.decision(conf, None)
        return self.decision(conf, self.confidence_of(signals, rank, second, ignore=[first]))

    def decision(self, first: float, second_alone: float | None) -> Decision:
        """The decision from the first entry's confidence and the runner-up's (judged with
        the first left out), when both are known already."""
        answer = first >= self.threshold
        ambiguous = answer and second_alone is not None and second_alone >= self.threshold
        return Decision(first, answer, ambiguous)


def _needs_tokens(confidence: Confidence) -> bool:
    return any(is_token_feature(n) for n in confidence.features)


def is_token_feature(name: str) -> bool:
    """Whether a confidence input needs the token recall (``tok``, ``tok_missed``, their
    margins and products)."""
    return any(part.removesuffix("_m") in TOKEN_FEATURES for part in name.split("*"))


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]
