"""Spec: one epoch of SGD at batch sizes from 1 to the whole dataset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from runners.labels import Label, param

NAME = "online_vs_minibatch"

TITLE = {
    "en": "Online vs minibatch SGD: progress per example seen",
    "ja": "オンライン SGD とミニバッチ SGD: 見た事例あたりの進み方",
}

CLAIM = {
    "en": (
        "With the same number of examples seen (one epoch) and a tuned step size for each "
        "batch size, online SGD (batch 1) reaches a clearly lower loss than full-batch "
        "gradient descent, and the loss does not fall as the batch grows (within a 10% "
        "tolerance). Larger minibatches finish the epoch faster in wall-clock time."
    ),
    "ja": (
        "見る事例の数を同じ（1 エポック）にし、バッチサイズごとに学習率を調整すると、"
        "オンライン SGD（バッチ 1）は全バッチ勾配降下法よりはっきり低い損失に達し、"
        "バッチを大きくしても損失は下がらない（許容幅 10%）。"
        "一方、大きなミニバッチの方がエポックの実時間は短い。"
    ),
}

# Worst allowed params (4096 examples, 50 features, budget "updates") measured at
# about 3.5-4 s on one core of the 2-core build machine.
TIME_BUDGET_S = 15.0


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_prototypes: int = param(
        64,
        ge=8,
        le=128,
        title=("Distinct inputs", "異なる入力点の数"),
        help=(
            "How many different input points the dataset is built from.",
            "データセットのもとになる、互いに異なる入力点の数。",
        ),
        unit=("points", "点"),
    )
    redundancy: int = param(
        32,
        ge=1,
        le=32,
        title=("Copies of each input", "各入力点のコピー数"),
        help=(
            "Slightly jittered copies of each distinct input; the dataset holds "
            "inputs × copies examples.",
            "各入力点を少しずらして複製する数。データセットの大きさは入力点の数 × コピー数です。",
        ),
    )
    n_features: int = param(
        20,
        ge=2,
        le=50,
        title=("Input dimension", "入力の次元"),
        help=(
            "Number of input features of the linear model.",
            "線形モデルの入力の特徴量の数。",
        ),
    )
    jitter: float = param(
        0.1,
        ge=0.0,
        le=1.0,
        title=("Jitter of the copies", "コピーのずらし幅"),
        help=(
            "Standard deviation of the noise added to each copy of an input.",
            "入力点の各コピーに加えるノイズの標準偏差。",
        ),
    )
    label_noise: float = param(
        0.1,
        ge=0.0,
        le=1.0,
        title=("Target noise", "目標値のノイズ"),
        help=(
            "Standard deviation of the noise on the regression targets.",
            "回帰の目標値に加えるノイズの標準偏差。",
        ),
    )
    budget: Literal["examples", "updates"] = param(
        "examples",
        title=("What is kept equal", "そろえる量"),
        help=(
            "'examples': one epoch for every batch size (the claim's setting); "
            "'updates': every batch size makes as many updates as online SGD does in one epoch.",
            "'examples' ではどのバッチサイズも 1 エポック学習し（主張の設定）、"
            "'updates' ではどのバッチサイズもオンライン SGD の 1 エポックと同じ回数だけ"
            "更新します。",
        ),
    )


METRICS: dict[str, Label] = {
    "dataset_size": Label("training examples", "訓練データの事例数", unit="examples", unit_ja="件"),
    "initial_loss": Label("loss before training (all weights 0)", "学習前の損失（重みはすべて 0）"),
    "least_squares_loss": Label(
        "lowest possible loss (least-squares solution)", "達成できる最小の損失（最小二乗解）"
    ),
    "loss_batch_{b}": Label(
        "loss after training, batch size {b}", "学習後の損失（バッチサイズ {b}）"
    ),
    "tuned_lr_batch_{b}": Label(
        "best learning rate found, batch size {b}", "選ばれた学習率（バッチサイズ {b}）"
    ),
    "updates_batch_{b}": Label(
        "weight updates, batch size {b}",
        "重みの更新回数（バッチサイズ {b}）",
        unit="updates",
        unit_ja="回",
    ),
    "loss_online": Label(
        "loss after training, online (batch size 1)", "オンライン（バッチサイズ 1）の学習後の損失"
    ),
    "loss_full_batch": Label("loss after training, full batch", "全バッチの学習後の損失"),
    "excess_loss_online": Label(
        "online loss above the lowest possible", "オンラインの損失と最小の損失との差"
    ),
    "excess_loss_full_batch": Label(
        "full-batch loss above the lowest possible", "全バッチの損失と最小の損失との差"
    ),
    "full_over_online_loss_ratio": Label(
        "full-batch loss compared with online",
        "全バッチの損失とオンラインの損失の比",
        unit="×",
        unit_ja="倍",
    ),
    "largest_relative_loss_drop_with_batch": Label(
        "largest relative fall in loss from a larger batch",
        "バッチを大きくしたときの損失の最大の相対低下",
    ),
    "examples_seen_online": Label(
        "examples seen, online", "オンラインで見た事例の数", unit="examples", unit_ja="件"
    ),
    "examples_seen_full_batch": Label(
        "examples seen, full batch", "全バッチで見た事例の数", unit="examples", unit_ja="件"
    ),
}
# The claim: the full-batch loss is at least MIN_FULL_OVER_ONLINE times the online
# loss, and no larger batch lowers the loss by more than the tolerance.
VERDICT_METRICS = (
    "loss_online",
    "loss_full_batch",
    "full_over_online_loss_ratio",
    "largest_relative_loss_drop_with_batch",
)


def expected(p: Params) -> bool | None:
    """Whether the answer predicts online SGD ahead: with the same number of examples
    seen, yes; with the same number of updates the large batches see more data, and the
    answer does not claim it then."""
    return True if p.budget == "examples" else None
