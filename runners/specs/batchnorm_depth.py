"""Spec: a deep MLP with and without batch norm, inputs normalised once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from runners.labels import Label, param

NAME = "batchnorm_depth"

TITLE = {
    "en": "Batch norm vs normalising the dataset once: a deep MLP",
    "ja": "バッチ正規化とデータセットの一括正規化: 深い MLP での比較",
}

CLAIM = {
    "en": (
        "Normalising the inputs once does not keep inner layers normalised: without batch "
        "norm the statistics of a deep hidden layer drift during training, while with batch "
        "norm they stay stable, and at a large learning rate the network with batch norm "
        "reaches a clearly lower training loss. The noise of a batch mean falls like "
        "1/sqrt(batch size)."
    ),
    "ja": (
        "入力を一度正規化しても内側の層は正規化されたままにはならない。バッチ正規化なしでは"
        "深い隠れ層の統計量が学習中に変動するが、バッチ正規化ありでは安定し、大きな学習率"
        "ではバッチ正規化ありのネットワークの方がはっきり低い訓練損失に達する。"
        "バッチ平均のばらつきは 1/sqrt(バッチサイズ) に比例して小さくなる。"
    ),
}

# Worst allowed params (12 layers of 128 units, batch 256, 1000 steps) measured at
# about 12 s on one idle core of the 2-core build machine, 16 s when shared.
TIME_BUDGET_S = 30.0


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = param(
        8,
        ge=1,
        le=12,
        title=("Hidden layers", "隠れ層の数"),
        help=(
            "How many hidden layers the network has; the claim is about a deep one.",
            "ネットワークの隠れ層の数。主張が扱うのは深いネットワークです。",
        ),
    )
    width: int = param(
        64,
        ge=16,
        le=128,
        title=("Layer width", "層の幅"),
        help=("Units in each hidden layer.", "各隠れ層のユニット数。"),
        unit=("units", "ユニット"),
    )
    learning_rate: float = param(
        0.5,
        ge=0.001,
        le=1.0,
        title=("Learning rate", "学習率"),
        help=(
            "SGD step size, the same for both networks; the claim is about a large one "
            "such as 0.5.",
            "両方のネットワークに共通の SGD のステップ幅。"
            "主張が扱うのは 0.5 のような大きな値です。",
        ),
    )
    steps: int = param(
        300,
        ge=50,
        le=1000,
        title=("Training steps", "学習ステップ数"),
        help=(
            "Minibatch SGD steps for each of the two networks.",
            "2 つのネットワークそれぞれを学習させるミニバッチ SGD のステップ数。",
        ),
        unit=("steps", "ステップ"),
    )
    batch_size: int = param(
        64,
        ge=8,
        le=256,
        title=("Batch size", "バッチサイズ"),
        help=(
            "Training examples in each minibatch.",
            "1 つのミニバッチに入れる訓練例の数。",
        ),
    )
    n_examples: int = param(
        2048,
        ge=512,
        le=8192,
        title=("Training examples", "訓練例の数"),
        help=(
            "Size of the synthetic training dataset.",
            "人工的に作る訓練データセットの大きさ。",
        ),
        unit=("examples", "個"),
    )


METRICS: dict[str, Label] = {
    "deep_std_drift_ratio_no_bn": Label(
        "spread of the deepest layer, largest over smallest during training, without batch norm",
        "学習中の最深層の標準偏差の最大と最小の比（バッチ正規化なし）",
        unit="×",
        unit_ja="倍",
    ),
    "deep_std_drift_ratio_bn": Label(
        "spread of the deepest layer, largest over smallest during training, with batch norm",
        "学習中の最深層の標準偏差の最大と最小の比（バッチ正規化あり）",
        unit="×",
        unit_ja="倍",
    ),
    "deep_mean_drift_no_bn": Label(
        "range of the deepest layer's mean during training, without batch norm",
        "学習中の最深層の平均の変動幅（バッチ正規化なし）",
    ),
    "deep_mean_drift_bn": Label(
        "range of the deepest layer's mean during training, with batch norm",
        "学習中の最深層の平均の変動幅（バッチ正規化あり）",
    ),
    "late_loss_no_bn": Label(
        "training loss over the last quarter, without batch norm",
        "学習の最後の 4 分の 1 での訓練損失（バッチ正規化なし）",
    ),
    "late_loss_bn": Label(
        "training loss over the last quarter, with batch norm",
        "学習の最後の 4 分の 1 での訓練損失（バッチ正規化あり）",
    ),
    "bn_loss_reduction": Label(
        "fraction by which batch norm lowers that loss",
        "バッチ正規化によるその損失の減少割合",
    ),
    "no_bn_diverged": Label(
        "training without batch norm diverged", "バッチ正規化なしの学習が発散した"
    ),
    "bn_diverged": Label("training with batch norm diverged", "バッチ正規化ありの学習が発散した"),
    "batch_mean_noise_slope": Label(
        "slope of the batch-mean spread against batch size (log-log)",
        "バッチ平均のばらつきのバッチサイズに対する傾き（両対数）",
    ),
    "batch_mean_std_b{size}": Label(
        "spread of batch means, batch size {size}",
        "バッチ平均のばらつき（バッチサイズ {size}）",
    ),
}
# The claim: steady statistics with batch norm (and drifting ones without), a clearly
# lower loss with it, and batch-mean noise falling like 1/sqrt(batch size).
VERDICT_METRICS = (
    "deep_std_drift_ratio_bn",
    "deep_std_drift_ratio_no_bn",
    "bn_loss_reduction",
    "batch_mean_noise_slope",
)


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the effect: for a deep network at a large learning
    rate, yes; elsewhere it does not say."""
    return True if p.depth >= 4 and p.learning_rate >= 0.3 else None
