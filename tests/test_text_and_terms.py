"""Language of a question's grammar, and lexical terms across scripts."""

from __future__ import annotations

import pytest

from knowledge.lexical import tokens
from knowledge.text import detect_lang, has_japanese, plain_text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Why does weight decay help?", "en"),
        ("重み減衰はなぜ効くのですか？", "ja"),
        # English sentences with a Japanese term: the answer should be in English.
        ("why does 重み減衰 help small networks?", "en"),
        ("what is 過学習 exactly", "en"),
        ("In my notes it says 「正則化する」, what does that mean?", "en"),
        # Japanese sentences whose terms are all in English.
        ("weight decayをAdamで使うとL2 regularizationと違うのはなぜ？", "ja"),
        ("CNNでmax poolingの代わりにstride 2のconvを使うとどうなる", "ja"),
        # No hiragana and no English grammar words: Japanese keywords.
        ("重み減衰　正則化　違い", "ja"),
        ("Adam 重み減衰 違い", "ja"),
        ("", "en"),
    ],
)
def test_language_follows_the_grammar(text: str, lang: str) -> None:
    assert detect_lang(text) == lang
    assert has_japanese(text) == any("\u3040" <= c <= "\u9fff" for c in text)


def test_english_words_in_japanese_text_are_english_terms() -> None:
    ja = tokens("Weight Decayを使うとlossが下がらない")
    en = tokens("the loss does not go down when I use weight decay")
    assert {"weight", "decay", "los"} <= set(ja) & set(en)
    # Sudachi would have spelled them in katakana; stop words never become terms.
    assert "ザ" not in tokens("what is the weight of 重み") and "the" not in ja


def test_question_framing_is_not_a_term() -> None:
    assert tokens("重み減衰の理由についてご教示いただけますでしょうか") == ["重み", "減衰"]
    assert tokens("Could you explain what's the point of weight decay?") == [
        "point",
        "weight",
        "decay",
    ]


def test_plain_text_of_an_answer_joins_its_paragraphs() -> None:
    markdown = "**Why.** Weight decay shrinks weights [@krogh1992].\n\n- a point long enough here"
    assert plain_text(markdown) == "Why. Weight decay shrinks weights . a point long enough here"
