"""Spec: batch norm in a VAE encoder ties an encoding to its batch-mates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = "vae_batchnorm"

TITLE = {
    "en": "Batch norm in a VAE encoder couples examples in a batch",
    "ja": "VAE のエンコーダのバッチ正規化はバッチ内の例を結び付ける",
}

CLAIM = {
    "en": (
        "With batch norm in the encoder, one example's latent mean moves when the other "
        "members of its batch change (relative shift above 1%), while the same encoder "
        "without normalisation gives exactly the same encoding whatever the batch "
        "(shift at most 1e-6)."
    ),
    "ja": (
        "エンコーダにバッチ正規化があると、同じ例の潜在平均がバッチ内の他の例を入れ替えるだけで"
        "動く（相対変化 1% 超）。正規化のないエンコーダでは、バッチが何であれ符号化は全く同じ"
        "（変化 1e-6 以下）。"
    ),
}

TIME_BUDGET_S = 30.0


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    norm: Literal["batch", "layer", "group", "none"] = Field(
        default="batch",
        description="Normalisation after the encoder's hidden layer (compared with 'none').",
    )
    batch_size: int = Field(
        default=32, ge=4, le=256, description="Examples per batch (training and probing)."
    )
    train_steps: int = Field(
        default=300, ge=0, le=2000, description="Adam steps used to train each VAE."
    )
    latent_dim: int = Field(default=4, ge=2, le=16, description="Size of the latent code.")
    hidden: int = Field(default=64, ge=8, le=256, description="Width of the hidden layers.")
    n_batches: int = Field(
        default=16,
        ge=2,
        le=64,
        description="Different random sets of batch-mates tried for each fixed example.",
    )


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the batch dependence: with batch norm, yes; layer norm
    or no normalisation make each encoding independent of its batch."""
    return p.norm == "batch"
