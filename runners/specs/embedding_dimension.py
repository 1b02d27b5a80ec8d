"""Spec: accuracy against embedding size at a known intrinsic dimension."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from runners.labels import Label, param

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

    intrinsic_dim: int = param(
        8,
        ge=2,
        le=16,
        title=("Intrinsic dimension k", "内在次元 k"),
        help=(
            "How many independent directions the inputs really vary in (they are embedded "
            "in 32 dimensions).",
            "入力が実際に変化する独立な方向の数（入力そのものは 32 次元です）。",
        ),
    )
    n_classes: int = param(
        32,
        ge=2,
        le=64,
        title=("Number of classes", "クラスの数"),
        help=(
            "How many classes the model tells apart; it should exceed k, or fewer than k "
            "directions are enough to separate them.",
            "モデルが見分けるクラスの数。k より多くないと、k 未満の方向で見分けられてしまいます。",
        ),
        unit=("classes", "クラス"),
    )
    dims: list[EmbeddingDim] = param(
        [1, 2, 4, 6, 8, 12, 16, 24],
        min_length=2,
        max_length=10,
        title=("Embedding sizes tried", "試す埋め込み次元"),
        help=(
            "The embedding dimensions m to train a model with, each from 1 to 32.",
            "モデルを訓練する埋め込み次元 m の一覧（それぞれ 1 から 32）。",
        ),
    )
    n_train: int = param(
        2000,
        ge=200,
        le=4000,
        title=("Training examples", "訓練データの数"),
        help=(
            "How many examples each model is trained on; accuracy is measured on 2000 others.",
            "各モデルの訓練に使う例の数。精度は別の 2000 件で測ります。",
        ),
        unit=("examples", "件"),
    )
    train_steps: int = param(
        200,
        ge=20,
        le=500,
        title=("Training steps", "訓練ステップ数"),
        help=(
            "How many full-batch Adam steps each embedding size is trained for.",
            "各埋め込み次元で、全データを一度に使って Adam で更新する回数。",
        ),
        unit=("steps", "ステップ"),
    )


_TOL = f"{SATURATION_TOL:g}"
_GAP = f"{UNDERFIT_GAP:g}"

METRICS: dict[str, Label] = {
    "intrinsic_dim": Label("intrinsic dimension k", "内在次元 k"),
    "best_val_acc": Label("best validation accuracy", "検証精度の最高値"),
    "best_dim": Label("embedding dimension with the best accuracy", "精度が最高の埋め込み次元"),
    "saturation_dim": Label(
        f"smallest embedding dimension within {_TOL} of the best",
        f"最高から {_TOL} 以内に入る最小の埋め込み次元",
    ),
    "sweep_covers_both_sides": Label(
        "sizes tried include both k or more and k/2 or less",
        "試した次元に k 以上と k/2 以下の両方がある",
    ),
    "saturates_by_k": Label(
        f"every dimension from k up is within {_TOL} of the best",
        f"k 以上のどの次元も最高から {_TOL} 以内",
    ),
    "small_dims_underfit": Label(
        f"dimensions up to k/2 fall at least {_GAP} short of the best",
        f"k/2 以下の次元は最高より {_GAP} 以上低い",
    ),
    "min_val_acc_dims_at_least_k": Label(
        "lowest accuracy at dimensions k and up", "k 以上の次元での最低の検証精度"
    ),
    "shortfall_dims_at_least_k": Label(
        "largest shortfall from the best at dimensions k and up",
        "k 以上の次元での最高との差（最大）",
    ),
    "max_val_acc_dims_at_most_half_k": Label(
        "highest accuracy at dimensions up to k/2", "k/2 以下の次元での最高の検証精度"
    ),
    "gap_dims_at_most_half_k": Label(
        "gap to the best at dimensions up to k/2", "k/2 以下の次元と最高との差"
    ),
}
# The claim: the sweep reaches both sides, saturates by k and underfits at k/2.
VERDICT_METRICS = ("sweep_covers_both_sides", "saturates_by_k", "small_dims_underfit")


def expected(p: Params) -> bool | None:
    """Whether the answer predicts saturation near k within this sweep: it shows when the
    sweep reaches k and starts at or below k/2, with enough classes to need all k
    directions (at least 2k); a sweep that stays below k cannot show it; otherwise the
    answer does not say."""
    k = p.intrinsic_dim
    if max(p.dims) < k:
        return False
    return True if min(p.dims) <= k / 2 and p.n_classes >= 2 * k else None
