"""Spec: accuracy against embedding size at a known intrinsic dimension."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME = "embedding_dimension"

TITLE = {
    "en": "Embedding size and the intrinsic dimension of the task",
    "ja": "埋め込み次元とタスクの内在次元",
}

SATURATION_TOL = 0.03

UNDERFIT_GAP = 0.05

CLAIM = {
    "en": (
        "On a classification task whose inputs have intrinsic dimension k, validation "
        "accuracy rises with the embedding dimension and then saturates near k: every "
        f"embedding dimension >= k is within {SATURATION_TOL:.0%} of the best accuracy, "
        f"while dimensions <= k/2 are at least {UNDERFIT_GAP:.0%} worse."
    ),
    "ja": (
        "入力の内在次元が k の分類タスクでは、検証精度は埋め込み次元とともに上がり、k 付近で"
        f"頭打ちになる。k 以上の埋め込み次元はすべて最良精度から {SATURATION_TOL:.0%} 以内、"
        f"k/2 以下の次元は {UNDERFIT_GAP:.0%} 以上低い。"
    ),
}

TIME_BUDGET_S = 40.0

EmbeddingDim = Annotated[int, Field(ge=1, le=32)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intrinsic_dim: int = Field(
        default=8, ge=2, le=16, description="Intrinsic dimension k of the inputs."
    )
    n_classes: int = Field(
        default=32,
        ge=2,
        le=64,
        description="Number of classes (should exceed k, else labels cap the usable directions).",
    )
    dims: list[EmbeddingDim] = Field(
        default=[1, 2, 4, 6, 8, 12, 16, 24],
        min_length=2,
        max_length=10,
        description="Embedding dimensions to sweep (each 1 to 32).",
    )
    n_train: int = Field(
        default=2000, ge=200, le=4000, description="Training examples (validation: 2000)."
    )
    train_steps: int = Field(
        default=200, ge=20, le=500, description="Full-batch Adam steps per embedding size."
    )


def expected(p: Params) -> bool | None:
    """Whether the answer predicts saturation near k within this sweep: it shows when the
    sweep reaches k and starts at or below k/2, with enough classes to need all k
    directions (at least 2k); a sweep that stays below k cannot show it; otherwise the
    answer does not say."""
    k = p.intrinsic_dim
    if max(p.dims) < k:
        return False
    return True if min(p.dims) <= k / 2 and p.n_classes >= 2 * k else None
