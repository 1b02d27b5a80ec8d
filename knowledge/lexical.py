"""BM25 over SudachiPy tokens (Japanese) and word tokens (English).

MiniLM knows little Japanese; exact term overlap (バッチ正規化, VAE, √d) is a strong,
cheap signal, and it helps decide when nothing in the knowledge base fits.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knowledge.text import has_japanese

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_EN_STOP = frozenset(
    """a an the and or but if of to in on at by for with about as is are was were be been being
    do does did doing have has had having i me my we our you your he she it its they them their
    this that these those what which who whom why how when where there here can could should
    would will shall may might must not no so than too very just also only into from up down out
    over under again then once any all both each few more most other some such own same s t don
    get got im ive id dont doesnt isnt whats hey hi please thanks thank really actually like
    anyone someone question ask know mean"""
    # How a question is put, not what it is about.
    """ explain explanation understand tell help want wonder wondering curious confused
    ok okay yeah guys thing things stuff kind sort way happen happens go goes going
    make makes made seem seems people exactly basically anyway else ever even still""".split()
)
# Sudachi parts of speech that carry no topic: particles, auxiliaries, symbols, blanks,
# pronouns (あれ), adnominals (その) and prefixes (ご).
_JA_SKIP_POS = frozenset(
    {"助詞", "助動詞", "補助記号", "空白", "接続詞", "感動詞", "代名詞", "連体詞", "接頭辞"}
)
# Normalised forms that frame a question (polite requests, "reason", "method") or are
# function words Sudachi tags as content.
_JA_STOP = frozenset(
    """何故 する 為る ある 有る いる 居る なる 成る 良い こと 事 もの 物 これ それ どう 何 ない 無い
    の ん よう 様 です ます 為 遣る 仕舞う 頂く 下さる 貰う 教える 教示 説明 伺う 出来る 思う
    於く 就く 付く つく 理由 方法 感じ 本当 時 所 訳 的""".split()
)

_tokenizer_lock = threading.Lock()
_tokenizer = None


def _sudachi() -> Any:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            from sudachipy import Dictionary

            _tokenizer = Dictionary(dict="core").tokenizer(mode="C")
        return _tokenizer


def _en_stem(word: str) -> str:
    """A light suffix stripper: plural and common inflections (normalises, normalizes)."""
    for suffix, keep in (("ization", "iz"), ("isation", "iz"), ("ises", "iz"), ("izes", "iz"),
                         ("ised", "iz"), ("ized", "iz"), ("ise", "iz"), ("ize", "iz"),
                         ("ing", ""), ("ies", "y"), ("es", ""), ("ed", ""), ("s", "")):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + keep
    return word


def _en_terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("’", "'"))
    # "what's" -> "whats", "teacher's" -> "teachers": apostrophes never split a term
    words = [w.replace("'", "") for w in words]
    return [_en_stem(w) for w in words if w not in _EN_STOP]


def tokens(text: str) -> list[str]:
    """Topic-bearing terms of ``text`` (normalised text expected).

    Text with any Japanese goes through SudachiPy, whose Latin-script words then get the
    English treatment (stop words out, light stemming), so "BatchNormを外す" and "remove
    BatchNorm" share the term ``batchnorm`` whichever language the sentence is in.
    """
    if not has_japanese(text):
        return _en_terms(text)
    tokenizer = _sudachi()
    with _tokenizer_lock:  # Sudachi tokenizers are not thread-safe
        morphemes = [
            (m.part_of_speech()[0], m.surface(), m.normalized_form())
            for m in tokenizer.tokenize(text)
        ]
    out: list[str] = []
    for pos, surface, form in morphemes:
        if pos in _JA_SKIP_POS:
            continue
        if surface.isascii():  # Sudachi would spell English words in katakana (the -> ザ)
            out.extend(_en_terms(surface))
            continue
        form = form.lower()
        if form.strip() and form not in _JA_STOP:
            out.append(_en_stem(form) if form.isascii() else form)
    return out


K1, B = 1.2, 0.5  # BM25's term-frequency saturation and length normalisation


@dataclass
class Postings:
    """One BM25 corpus as flat arrays: per-term postings and per-doc term ids.

    Arrays, not dicts of lists, so that an index of 100k entries (millions of term
    occurrences) builds with array operations and maps from a snapshot file without
    being read. ``tokens`` (each doc's term ids) is what a removed doc takes out of the
    corpus statistics when the index is caught up entry by entry.
    """

    terms: list[str]  # term id -> term
    start: np.ndarray  # (terms + 1,) int64: term t's postings are [start[t], start[t+1])
    docs: np.ndarray  # int32 doc of each posting, ascending within a term
    tf: np.ndarray  # float32 term frequency of each posting
    lengths: np.ndarray  # (docs,) float32 terms per doc
    token_start: np.ndarray  # (docs + 1,) int64
    tokens: np.ndarray  # int32 term ids of each doc, in order
    vocab: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vocab = {t: i for i, t in enumerate(self.terms)}

    @classmethod
    def build(cls, docs: Iterable[list[str]]) -> Postings:
        vocab: dict[str, int] = {}
        ids: list[int] = []
        lengths: list[int] = []
        for doc in docs:
            ids.extend(vocab.setdefault(t, len(vocab)) for t in doc)
            lengths.append(len(doc))
        return cls.from_ids(
            list(vocab), np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64)
        )

    @classmethod
    def from_ids(cls, terms: list[str], tokens: np.ndarray, lengths: np.ndarray) -> Postings:
        n = len(lengths)
        token_start = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        doc_ids = np.repeat(np.arange(n, dtype=np.int64), lengths)
        # One (term, doc) pair per distinct term of a doc, sorted by term: its postings.
        pairs, tf = np.unique(tokens.astype(np.int64) * max(n, 1) + doc_ids, return_counts=True)
        pair_terms, pair_docs = np.divmod(pairs, max(n, 1))
        start = np.searchsorted(pair_terms, np.arange(len(terms) + 1)).astype(np.int64)
        return cls(
            terms,
            start,
            pair_docs.astype(np.int32),
            tf.astype(np.float32),
            np.asarray(lengths, dtype=np.float32),
            token_start,
            tokens.astype(np.int32),
        )

    @property
    def n(self) -> int:
        return len(self.lengths)

    def df(self, term: str) -> int:
        t = self.vocab.get(term)
        return 0 if t is None else int(self.start[t + 1] - self.start[t])

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        t = self.vocab.get(term)
        if t is None:
            return None
        lo, hi = int(self.start[t]), int(self.start[t + 1])
        return self.docs[lo:hi], self.tf[lo:hi]

    def doc_terms(self, docs: np.ndarray) -> Counter[str]:
        """How many of ``docs`` use each term (their document frequencies)."""
        out: Counter[str] = Counter()
        for d in docs:
            ids = np.unique(self.tokens[self.token_start[d] : self.token_start[d + 1]])
            out.update(self.terms[int(t)] for t in ids)
        return out


@dataclass
class CorpusStats:
    """BM25 statistics of a corpus held in several parts: a base (minus its removed
    docs) and the docs added since. Scores then equal those of one corpus of the live
    docs, without rebuilding the base."""

    n: int
    total_length: float
    df_change: dict[str, int]  # term -> docs added using it minus removed ones using it
    base: Postings

    @classmethod
    def of(
        cls, base: Postings, removed: np.ndarray | None = None, added: Postings | None = None
    ) -> CorpusStats:
        n, total = base.n, float(base.lengths.sum())
        change: Counter[str] = Counter()
        if removed is not None and len(removed):
            n -= len(removed)
            total -= float(base.lengths[removed].sum())
            change.subtract(base.doc_terms(removed))
        if added is not None and added.n:
            n += added.n
            total += float(added.lengths.sum())
            change.update({t: added.df(t) for t in added.terms})
        return cls(n, total, {t: c for t, c in change.items() if c}, base)

    @property
    def avg_length(self) -> float:
        return self.total_length / self.n if self.n and self.total_length > 0 else 1.0

    def idf(self, term: str) -> float:
        df = self.base.df(term) + self.df_change.get(term, 0)
        if df <= 0:
            return self.default_idf
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    @property
    def default_idf(self) -> float:
        """For terms seen nowhere."""
        return math.log(1 + (self.n + 0.5) / 0.5)


def _term_scores(
    postings: Postings, stats: CorpusStats, query: list[str]
) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    """The query's best possible BM25 (every distinct term matched) and, per query term
    found, its docs and their term scores under the whole corpus's ``stats``."""
    idf = {t: stats.idf(t) for t in set(query)}
    avg = stats.avg_length
    found = []
    for term, weight in idf.items():
        hit = postings.postings(term)
        if hit is not None:
            ids, tf = hit
            norm = K1 * (1 - B + B * postings.lengths[ids] / avg)
            found.append((ids, weight * tf / (tf + norm)))
    return sum(idf.values()), found


def bm25(postings: Postings, stats: CorpusStats, query: list[str]) -> np.ndarray:
    """Okapi BM25 of every doc of ``postings`` under the whole corpus's ``stats``,
    normalised to [0, 1]: divided by the query's best possible score (every distinct
    query term matched), so 1.0 means every informative query term was found."""
    out = np.zeros(postings.n, dtype=np.float32)
    if not query or not postings.n:
        return out
    best, found = _term_scores(postings, stats, query)
    for ids, scores in found:
        out[ids] += scores
    return out / best


@dataclass
class DocScores:
    """Normalised BM25 of the docs that match a query at all (the rest score 0)."""

    docs: np.ndarray  # ascending
    values: np.ndarray  # float32

    def at(self, docs: np.ndarray) -> np.ndarray:
        if not len(self.docs):
            return np.zeros(len(docs), dtype=np.float32)
        i = np.minimum(np.searchsorted(self.docs, docs), len(self.docs) - 1)
        return np.where(self.docs[i] == docs, self.values[i], np.float32(0))

    def top(self, k: int) -> np.ndarray:
        """The (at most) ``k`` best docs."""
        if len(self.docs) <= k:
            return self.docs
        return self.docs[np.argpartition(-self.values, k - 1)[:k]]


def bm25_matches(postings: Postings, stats: CorpusStats, query: list[str]) -> DocScores:
    """``bm25`` for the matching docs only: its cost follows the query's postings, not
    the corpus (a large index has hundreds of thousands of docs)."""
    empty = DocScores(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    if not query or not postings.n:
        return empty
    best, found = _term_scores(postings, stats, query)
    if not found:
        return empty
    ids = np.concatenate([np.asarray(ids, dtype=np.int64) for ids, _ in found])
    docs, inverse = np.unique(ids, return_inverse=True)
    weights = np.concatenate([scores for _, scores in found])
    sums = np.bincount(inverse, weights=weights, minlength=len(docs))
    return DocScores(docs, (sums / best).astype(np.float32))
