"""Token recall (``knowledge.token_match``): the encoder's token states, the recall of a
question's tokens in an entry's text, the per-process cache, and the fallback where a
knowledge base is too large for it (real model, real database)."""

from __future__ import annotations

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from knowledge import embedders, onnx_e5, token_match
from knowledge.ask import Retriever
from knowledge.ranking import TOKEN_CANDIDATES, RetrievalModel, TokenSpace

E5 = embedders.E5Small.name


@pytest.fixture(scope="module")
def e5() -> embedders.E5Small:
    embedder = embedders.get(E5)
    assert isinstance(embedder, embedders.E5Small)
    return embedder


@pytest.fixture(scope="module")
def space() -> TokenSpace:
    model = RetrievalModel.load()
    assert model.tokens is not None, "the shipped model compares token states"
    return model.tokens


def test_token_states_come_from_the_same_pass_as_the_vectors(e5: embedders.E5Small) -> None:
    texts = ["Why divide attention logits by sqrt(d)?", "ダブルディセントとは？", "x " * 700]
    model = e5._load()
    vectors, tokens = model.encode_with_tokens(texts, "query")
    assert np.allclose(vectors, model.encode(texts, "query"))
    tokenizer = model.inputs.tokenizer
    for text, t in zip(texts, tokens, strict=True):
        # every token of the text, the prefix and markers left out, windows joined
        assert t.states.shape == (len(tokenizer.ids(text)), model.inputs.hidden), text
        assert t.ids == tokenizer.ids(text), text
    assert len(tokenizer.windows(onnx_e5.PREFIXES["query"] + texts[2])) == 2


def test_a_paraphrase_recalls_more_of_the_entry_and_misses_less_than_a_neighbour(
    app: Flask, e5: embedders.E5Small, space: TokenSpace
) -> None:
    retriever: Retriever = app.extensions["core"].retriever
    entry = next(e for e in retriever.index().entries if e.slug == "attention-sqrt-d-scaling")
    states = token_match.EntryStates(E5, space, max_entries=4).get(retriever.factory, [entry])[0]

    def match(question: str) -> tuple[float, float]:
        """(recall with every token alike, missed share by idf)"""
        tokens = e5.encode_queries_with_tokens([question])[0][1]
        projected = space.project(tokens.states)
        missed = token_match.match(projected, states, space.weights(tokens.ids))[1]
        assert 0.0 <= missed <= 1.0
        return token_match.match(projected, states)[0], missed

    paraphrases = [
        match("why do we scale the attention scores by 1/sqrt(d_k)?"),
        match("アテンションでルートdで割る理由は？"),
    ]
    neighbours = [  # the same words (attention, query, key), another mechanism
        match("why do rotary position embeddings rotate the query and key vectors?"),
        match("ロータリー位置埋め込みはなぜクエリとキーを回転させるの？"),
    ]
    recalls, missed = [[p[k] for p in paraphrases] for k in (0, 1)]
    rival_recalls, rival_missed = [[n[k] for n in neighbours] for k in (0, 1)]
    assert min(recalls) > max(rival_recalls) + 0.1, (paraphrases, neighbours)
    assert max(missed) < min(rival_missed), (paraphrases, neighbours)
    assert token_match.match(np.zeros((0, len(space.mean))), states) == (0.0, 1.0)


def test_the_cache_keeps_the_most_recent_entries_by_content(app: Flask, space: TokenSpace) -> None:
    retriever = app.extensions["core"].retriever
    entries = list(retriever.index().entries)[:3]
    states = token_match.EntryStates(E5, space, max_entries=2)
    first = states.get(retriever.factory, entries)
    assert all(s.tokens > 10 and s.codes.dtype == np.int8 for s in first)
    assert all(s.codes.flags.c_contiguous and s.codes.shape[0] == len(space.mean) for s in first)
    keys = [e.content_hash for e in entries]
    assert list(states._cache) == keys[1:]  # the least recently used went out
    again = states.get(retriever.factory, entries[1:2])[0]  # a hit: now the most recent
    assert again is states._cache[keys[1]]
    recomputed = states.get(retriever.factory, entries[:1])[0]
    assert list(states._cache) == [keys[1], keys[0]]
    assert np.abs(recomputed.codes.astype(int) - first[0].codes).max() <= 1
    norms = np.linalg.norm(first[0].codes * first[0].scale, axis=0)  # one column per token
    assert np.allclose(norms, 1.0, atol=0.01)  # centred, then normalised


def test_the_int8_product_finds_the_float_products_best_cosines(
    app: Flask, e5: embedders.E5Small, space: TokenSpace
) -> None:
    retriever: Retriever = app.extensions["core"].retriever
    entry = next(e for e in retriever.index().entries if e.slug == "batchnorm-in-vae")
    cache = token_match.EntryStates(E5, space, max_entries=1)
    states = cache.get(retriever.factory, [entry])[0]
    floats = cache.float_states(retriever.factory, [entry.id])[entry.id]
    for question in (
        "why does batch norm hurt a VAE?",
        "VAEでバッチ正規化を外すと良くなるのはなぜ？",
    ):
        tokens = e5.encode_queries_with_tokens([question])[0][1]
        rows = space.project(tokens.states)
        exact = (rows @ floats).max(axis=1)
        recall, missed = token_match.match(rows, states)
        assert abs(recall - float(exact.mean())) < 0.002, question
        # a token whose best cosine is this close to the cut-off may land on either side
        near = np.abs(exact - token_match.MISSED_BELOW) < 0.002
        share = float((exact < token_match.MISSED_BELOW).mean())
        assert abs(missed - share) <= near.mean() + 1e-9, question
        assert 0.3 < recall < 1.0 and 0.0 <= missed < 0.5, (question, recall, missed)


def test_questions_get_token_recall_for_the_first_entries_by_rank(app: Flask) -> None:
    retriever: Retriever = app.extensions["core"].retriever
    assert retriever.model.uses_tokens and retriever.token_states is not None
    matches, decision = retriever._ranked("why divide attention logits by sqrt(d)?", None, 5, None)
    assert decision is not None and decision.answer
    assert matches[0].entry.slug == "attention-sqrt-d-scaling"
    # Ranked below the entries with a token recall, the rest are judged by the fallback.
    assert len(matches) == 5 and all(0.0 <= m.confidence <= 1.0 for m in matches)
    signals = retriever.signals("why divide attention logits by sqrt(d)?")
    assert signals.token_recall is not None and np.isfinite(signals.token_recall).all()
    assert len(signals.token_recall) > TOKEN_CANDIDATES


def test_a_knowledge_base_larger_than_the_cache_is_answered_with_the_fallback(
    app: Flask, client: FlaskClient, space: TokenSpace
) -> None:
    retriever: Retriever = app.extensions["core"].retriever
    question = "why divide attention logits by sqrt(d)?"
    with_tokens = retriever.ask(question, log=False)
    retriever.token_states = token_match.EntryStates(E5, space, max_entries=1)
    signals = retriever.signals(question)
    assert signals.token_recall is None and signals.question_states is None
    without = retriever.ask(question, log=False)
    assert not without.abstained and without.best is not None
    assert without.best.entry.slug == "attention-sqrt-d-scaling"
    assert without.confidence != with_tokens.confidence  # another model decided
    body = client.post("/api/v1/ask", json={"question": question, "top_k": 10}).json
    assert body["answer"]["slug"] == "attention-sqrt-d-scaling"
