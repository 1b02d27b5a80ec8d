"""Spec: a deep MLP with and without batch norm, inputs normalised once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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

    depth: int = Field(default=8, ge=1, le=12, description="Number of hidden layers.")
    width: int = Field(default=64, ge=16, le=128, description="Units per hidden layer.")
    learning_rate: float = Field(
        default=0.5,
        ge=0.001,
        le=1.0,
        description="SGD step size for both arms (the claim is about a large one, e.g. 0.5).",
    )
    steps: int = Field(default=300, ge=50, le=1000, description="Minibatch SGD steps per arm.")
    batch_size: int = Field(default=64, ge=8, le=256, description="Training minibatch size.")
    n_examples: int = Field(
        default=2048, ge=512, le=8192, description="Training examples in the synthetic dataset."
    )


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the effect: for a deep network at a large learning
    rate, yes; elsewhere it does not say."""
    return True if p.depth >= 4 and p.learning_rate >= 0.3 else None
