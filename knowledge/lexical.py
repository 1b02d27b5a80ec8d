"""BM25 over SudachiPy tokens (Japanese) and word tokens (English).

MiniLM knows little Japanese; exact term overlap (バッチ正規化, VAE, √d) is a strong,
cheap signal, and it helps decide when nothing in the knowledge base fits.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
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


class BM25:
    """Okapi BM25 over short units; scores normalised to [0, 1] per query.

    The normalised score is the BM25 score divided by the query's best possible score
    (every query term matched), so 1.0 means every informative query term was found.
    Built with array operations: an index of 100k entries has millions of term
    occurrences, and every process builds its index at start and after each change.
    """

    def __init__(self, docs: Sequence[list[str]], k1: float = 1.2, b: float = 0.5) -> None:
        self.k1, self.b = k1, b
        self.n = len(docs)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=self.n)
        self.lengths = lengths.astype(np.float32)
        self.avg = float(self.lengths.mean()) if self.n and lengths.sum() else 1.0
        self._norm = k1 * (1 - b + b * self.lengths / self.avg)
        vocab: dict[str, int] = {}
        term_ids = np.fromiter(
            (vocab.setdefault(t, len(vocab)) for doc in docs for t in doc),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        doc_ids = np.repeat(np.arange(self.n, dtype=np.int64), lengths)
        # One (term, doc) pair per distinct term of a doc, sorted by term: its postings.
        pairs, tf = np.unique(term_ids * max(self.n, 1) + doc_ids, return_counts=True)
        pair_terms, pair_docs = np.divmod(pairs, max(self.n, 1))
        bounds = np.flatnonzero(np.r_[True, pair_terms[1:] != pair_terms[:-1], True])
        if not len(pairs):
            bounds = bounds[:1]
        df = np.diff(bounds)
        names = list(vocab)
        tf32 = tf.astype(np.float32)
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.idf: dict[str, float] = {}
        for k in range(len(bounds) - 1):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            term = names[int(pair_terms[lo])]
            self.postings[term] = (pair_docs[lo:hi], tf32[lo:hi])
            self.idf[term] = math.log(1 + (self.n - int(df[k]) + 0.5) / (int(df[k]) + 0.5))
        self.default_idf = math.log(1 + (self.n + 0.5) / 0.5)  # for terms seen nowhere

    def scores(self, query: list[str]) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        terms = Counter(query)
        if not terms or not self.n:
            return out
        best = sum(self.idf.get(t, self.default_idf) for t in terms)
        for term in terms:
            if term not in self.postings:
                continue
            ids, tf = self.postings[term]
            out[ids] += self.idf[term] * tf / (tf + self._norm[ids])
        return out / best
