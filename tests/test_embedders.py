"""The MiniLM graph on ONNX Runtime, its int8 build, and the query batcher (real models)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from knowledge import embedders, onnx_minilm

SENTENCES = [
    "Why are attention logits divided by the square root of the key dimension?",
    "double descent",
    "Is online SGD better than minibatch SGD when you cannot parallelise anyway?",
    "アテンションのスコアを√dで割るのはなぜですか？",
    "How was the size of BERT's position embeddings chosen, and does it matter much?",
    "A long pasted question about gradients and layers " * 40,  # past the 256-token limit
]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    """The reference: the packaged model in sentence-transformers (PyTorch)."""
    model = onnx_minilm.packaged_model()
    return model.encode(SENTENCES, normalize_embeddings=True, show_progress_bar=False)


def test_onnx_graph_gives_sentence_transformers_vectors(torch_vectors: np.ndarray) -> None:
    # One call with sentences of different lengths: padding and the mask are exercised.
    vectors = embedders.MiniLM().encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), embedders.MiniLM.dim)
    assert np.abs(vectors - torch_vectors).max() < 1e-4
    single = embedders.MiniLM().encode([SENTENCES[1]])[0]
    assert np.abs(single - torch_vectors[1]).max() < 1e-4


def test_int8_vectors_stay_close_to_fp32(torch_vectors: np.ndarray) -> None:
    vectors = embedders.MiniLMInt8().encode(SENTENCES)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.95, cosines
    assert not np.allclose(vectors, torch_vectors, atol=1e-4), "int8 build was not quantised"
    # Order within a call does not change a sentence's vector.
    again = embedders.MiniLMInt8().encode(SENTENCES[::-1])[::-1]
    assert np.abs(again - vectors).max() < 1e-3


@pytest.mark.slow
def test_graph_is_exported_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    first = onnx_minilm.graph_path("fp32")
    assert first.parent == tmp_path / "models" and first.stat().st_size > 50_000_000
    stamp = first.stat().st_mtime_ns
    assert onnx_minilm.graph_path("fp32") == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".export-")] == []


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown MiniLM variant"):
        onnx_minilm.graph_path("fp16")


class Recording:
    """The real USE encoder, recording batch sizes; the first batch waits for the others."""

    def __init__(self, others: int, fail: bool = False) -> None:
        self.inner = embedders.get(embedders.MultilingualUSE.name)
        self.name, self.dim, self.batch_queries = self.inner.name, self.inner.dim, True
        self.batches: list[int] = []
        self.others, self.fail = others, fail
        self.batcher: embedders.QueryBatcher | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self.batches:  # hold the first batch until every other question is waiting
            deadline = time.monotonic() + 10
            while len(self.batcher._waiting) < self.others and time.monotonic() < deadline:
                time.sleep(0.005)
        self.batches.append(len(texts))
        if self.fail:
            raise RuntimeError("encoder failed")
        return self.inner.encode(texts)


def _ask_concurrently(batcher: embedders.QueryBatcher, texts: list[str]) -> list[object]:
    results: list[object] = [None] * len(texts)

    def one(i: int) -> None:
        try:
            results[i] = batcher.encode_one(texts[i])
        except Exception as exc:  # collected and checked by the test
            results[i] = exc

    first = threading.Thread(target=one, args=(0,))
    first.start()
    while not batcher._busy:
        time.sleep(0.001)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(1, len(texts))]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join(timeout=30)
    return results


def test_concurrent_questions_share_a_batch_and_get_their_own_vectors() -> None:
    texts = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(8)]
    recording = Recording(others=7)
    batcher = recording.batcher = embedders.QueryBatcher(recording)
    results = _ask_concurrently(batcher, texts)
    assert recording.batches == [1, 7]
    alone = recording.inner.encode(texts)
    for i, vector in enumerate(results):
        assert isinstance(vector, np.ndarray)
        assert np.abs(vector - alone[i]).max() < 1e-4, i


def test_an_encoder_error_reaches_every_waiter_and_the_batcher_recovers() -> None:
    recording = Recording(others=3, fail=True)
    batcher = recording.batcher = embedders.QueryBatcher(recording)
    results = _ask_concurrently(batcher, ["a", "b", "c", "d"])
    assert all(isinstance(r, RuntimeError) for r in results), results
    recording.fail = False
    assert batcher.encode_one("after the failure").shape == (embedders.MultilingualUSE.dim,)
