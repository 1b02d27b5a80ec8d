"""Retrieval as students meet it: alias-free entries in both languages, the course's own
wordings, mixed script, honest declines (through the API, real models, real database)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from knowledge.index import EMPTY
from knowledge.ranking import MODEL_FILE, RetrievalModel, candidate_features, fill_missing
from tests.api_fixtures import bearer, make_token

ROOT = Path(__file__).resolve().parent.parent
SOURCE_WORDINGS = yaml.safe_load(
    (ROOT / "bench" / "eval" / "source_wordings.yaml").read_text(encoding="utf-8")
)["questions"]

# Written the way a TA writes an entry: question and answer in both languages, one
# citation, no aliases. (Not part of the evaluation set.)
CHECKPOINTING: dict[str, Any] = {
    "slug": "gradient-checkpointing",
    "course": "nyu-dl-f20",
    "question": {
        "en": "How does gradient checkpointing let me train a deeper network on the same GPU?",
        "ja": "勾配チェックポイントを使うと、同じGPUでより深いネットワークを学習できるのは"
        "なぜですか？",
    },
    "answer": {
        "en": "Backpropagation needs every layer's activations from the forward pass, and "
        "storing all of them is what fills GPU memory in a deep network. Checkpointing keeps "
        "only some of them (for example every k-th layer) and recomputes the others from the "
        "nearest checkpoint during the backward pass [@chen2016].\n\nWith checkpoints every "
        "√n layers of an n-layer network, memory grows like √n instead of n, for the price of "
        "about one extra forward pass: training is roughly a third slower, but a network "
        "several times deeper, or a larger batch, fits in the same memory.",
        "ja": "誤差逆伝播では順伝播で計算した各層の活性化がすべて必要で、深いネットワークでは"
        "それを保存することがGPUメモリを圧迫します。チェックポイント法では一部の層（たとえば"
        "k層ごと）の活性化だけを保存し、残りは逆伝播のときに直前のチェックポイントから計算し"
        "直します [@chen2016]。\n\nn層のネットワークで√n層ごとに保存すると、メモリはnではなく"
        "√nに比例して増えるだけで済み、代わりに順伝播をおよそ1回余分に行います。学習は3割ほど"
        "遅くなりますが、同じメモリで何倍も深いネットワークや大きなバッチを扱えます。",
    },
    "citations": [
        {
            "key": "chen2016",
            "title": "Training Deep Nets with Sublinear Memory Cost",
            "authors": ["Tianqi Chen", "Bing Xu", "Chiyuan Zhang", "Carlos Guestrin"],
            "year": 2016,
            "venue": "arXiv preprint",
            "url": "https://arxiv.org/abs/1604.06174",
        }
    ],
}


def ask(client: FlaskClient, question: str, **extra: Any) -> dict[str, Any]:
    res = client.post("/api/v1/ask", json={"question": question, **extra})
    assert res.status_code == 200, res.json
    return res.json


@pytest.fixture
def with_checkpointing(app: Flask, client: FlaskClient) -> FlaskClient:
    res = client.post(
        "/api/v1/entries", json=CHECKPOINTING, headers=bearer(make_token(app, "write"))
    )
    assert res.status_code == 201, res.json
    app.extensions["core"].retriever.refresh(force=True)
    return client


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("ok so how does activation checkpointing save GPU memory, is it just recomputing "
         "stuff in the backward pass?", "en"),
        ("勾配チェックポイントってなんでメモリ節約になるの？深いモデルが載るようになる理由が知りたい",
         "ja"),
        ("チェックポイントを使った学習で、GPUメモリの使用量が減る仕組みについてご説明いただけますか。",
         "ja"),
    ],
)  # fmt: skip
def test_an_entry_written_without_aliases_is_found_in_both_languages(
    with_checkpointing: FlaskClient, question: str, lang: str
) -> None:
    body = ask(with_checkpointing, question)
    assert body["abstained"] is False, body
    assert body["answer"]["slug"] == "gradient-checkpointing"
    assert body["lang"] == body["answer"]["lang"] == lang


@pytest.mark.parametrize("q", SOURCE_WORDINGS, ids=[q["id"] for q in SOURCE_WORDINGS])
def test_the_course_s_own_wordings_are_answered(client: FlaskClient, q: dict[str, Any]) -> None:
    body = ask(client, q["q"])
    assert body["abstained"] is False, (body["confidence"], body["matches"])
    assert body["answer"]["slug"] == q["expect"]
    assert body["answer"]["lang"] == q["lang"]


def test_english_with_a_japanese_term_is_answered_in_english(client: FlaskClient) -> None:
    body = ask(client, "why do we divide by the square root of d before the ソフトマックス?")
    assert body["lang"] == "en"
    assert body["abstained"] is False
    assert body["answer"]["slug"] == "attention-sqrt-d-scaling"
    assert body["answer"]["lang"] == "en"


@pytest.mark.parametrize(
    "question",
    [
        "How do I set up distributed data parallel training on four GPUs in PyTorch?",
        "PyTorchで4枚のGPUを使ってDistributedDataParallelの学習を設定するには？",
    ],
)
def test_an_in_domain_question_no_entry_answers_is_declined(
    with_checkpointing: FlaskClient, question: str
) -> None:
    body = ask(with_checkpointing, question)
    assert body["abstained"] is True, body
    assert body["answer"] is None
    assert body["matches"], "the nearest entries are still shown as related"


def test_related_entries_of_a_decline_follow_the_fitted_cut(
    with_checkpointing: FlaskClient,
) -> None:
    question = "How do I set up distributed data parallel training on four GPUs in PyTorch?"
    retriever = with_checkpointing.application.extensions["core"].retriever
    shipped = retriever.model
    shown = ask(with_checkpointing, question)["matches"]
    assert shown and all(m["score"] >= shipped.related_min for m in shown)
    try:
        retriever.model = replace(shipped, related_min=1.0)  # nothing is that close
        body = ask(with_checkpointing, question)
        assert body["abstained"] and body["matches"] == [] and body["off_topic"] is True
    finally:
        retriever.model = shipped


def test_the_shipped_model_is_complete_and_fitted() -> None:
    model = RetrievalModel.load(MODEL_FILE)
    assert model.fitted.get("on", "").startswith("bench/eval tuning half")
    assert 0.0 < model.threshold < 1.0
    assert 0.0 < model.related_min < model.threshold  # fitted on the off-topic questions
    assert len(model.ranker.weights) == len(model.ranker.features)
    n = len(model.confidence.features)
    assert model.confidence.coef.shape == model.confidence.mean.shape == (n,)
    # token recall is an input, and a fallback without it decides where it is not computed
    assert model.tokens is not None and model.tokens.mean.shape == (384,)
    assert "tok" in model.confidence.features and model.fallback is not None
    assert not any("tok" in f for f in model.fallback.features)
    assert RetrievalModel.from_dict(model.to_dict()).to_dict() == model.to_dict()


def test_every_feature_of_the_model_is_computed(app: Flask) -> None:
    retriever = app.extensions["core"].retriever
    signals = retriever.signals("why divide attention logits by sqrt(d)?")
    rank = retriever.model.ranker.scores(signals)
    assert np.isfinite(rank).all()
    x = candidate_features(signals, rank, int(np.argmax(rank)), retriever.model.confidence.features)
    assert x.shape == (len(retriever.model.confidence.features),) and np.isfinite(x).all()


def test_an_entry_without_paragraphs_is_scored_as_neutral_there() -> None:
    scores = np.array([[0.9, 0.8, 0.85], [0.7, EMPTY, EMPTY], [0.6, 0.5, 0.55]], np.float32)
    filled = fill_missing(scores)
    assert filled[1, 0] == pytest.approx(0.7)
    assert filled[1, 1] == pytest.approx(0.65) and filled[1, 2] == pytest.approx(0.7)
    assert (filled[[0, 2]] == scores[[0, 2]]).all()


# A second entry on the same technique, as a TA might add later (no aliases either).
CHECKPOINTING_COST: dict[str, Any] = {
    **CHECKPOINTING,
    "slug": "gradient-checkpointing-cost",
    "question": {
        "en": "How much slower is training with gradient checkpointing, and when is it worth it?",
        "ja": "勾配チェックポイントを使うと学習はどれくらい遅くなり、どんなときに使う価値が"
        "ありますか？",
    },
    "answer": {
        "en": "Gradient checkpointing recomputes the activations it did not keep, so each "
        "training step runs the forward pass about one and a half times: expect roughly 20 to "
        "35 percent more time per step [@chen2016].\n\nIt is worth it when memory, not compute, "
        "is the limit: a deeper model or a larger batch that would not fit otherwise.",
        "ja": "勾配チェックポイントは保存しなかった活性化を計算し直すため、1ステップあたり順伝播を"
        "1.5回ほど実行することになり、時間はおよそ2〜3割増えます [@chen2016]。\n\n計算量ではなく"
        "メモリが制約になっているとき、つまりそのままでは載らない深いモデルや大きなバッチを扱い"
        "たいときに使う価値があります。",
    },
}


def test_two_entries_on_one_technique_ask_which_was_meant(
    with_checkpointing: FlaskClient, app: Flask
) -> None:
    res = with_checkpointing.post(
        "/api/v1/entries", json=CHECKPOINTING_COST, headers=bearer(make_token(app, "write"))
    )
    assert res.status_code == 201, res.json
    app.extensions["core"].retriever.refresh(force=True)
    body = ask(with_checkpointing, "What is gradient checkpointing?")
    assert body["abstained"] is False, body
    offered = [m["slug"] for m in body["did_you_mean"]]
    assert sorted(offered) == ["gradient-checkpointing", "gradient-checkpointing-cost"], body
    assert offered[0] == body["answer"]["slug"]
    # Elsewhere nothing changes: a question on another entry is not a close call.
    body = ask(with_checkpointing, "Why are attention logits divided by the square root of d?")
    assert body["answer"]["slug"] == "attention-sqrt-d-scaling"
    assert body["did_you_mean"] == []
