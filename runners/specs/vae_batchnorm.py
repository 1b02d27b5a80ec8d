"""Spec: batch norm in a VAE encoder ties an encoding to its batch-mates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from runners.labels import Label, param

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

    norm: Literal["batch", "layer", "group", "none"] = param(
        "batch",
        title=("Encoder normalisation", "エンコーダの正規化"),
        help=(
            "Normalisation after the encoder's hidden layer: batch, layer, group or none; "
            "the run compares it with an encoder without normalisation.",
            "エンコーダの隠れ層の後に入れる正規化（バッチ、レイヤー、グループ、なし）。"
            "正規化のないエンコーダと比べます。",
        ),
    )
    batch_size: int = param(
        32,
        ge=4,
        le=256,
        title=("Batch size", "バッチサイズ"),
        help=(
            "Examples per batch, both in training and when probing the encoder.",
            "1 つのバッチに入れる例の数。学習でもエンコーダを調べるときも同じです。",
        ),
    )
    train_steps: int = param(
        300,
        ge=0,
        le=2000,
        title=("Training steps", "学習ステップ数"),
        help=(
            "Adam steps used to train each VAE.",
            "それぞれの VAE の学習に使う Adam のステップ数。",
        ),
        unit=("steps", "ステップ"),
    )
    latent_dim: int = param(
        4,
        ge=2,
        le=16,
        title=("Latent size", "潜在変数の次元"),
        help=("Number of dimensions of the latent code.", "潜在符号の次元数。"),
    )
    hidden: int = param(
        64,
        ge=8,
        le=256,
        title=("Hidden width", "隠れ層の幅"),
        help=(
            "Units in each hidden layer of the encoder and the decoder.",
            "エンコーダとデコーダの各隠れ層のユニット数。",
        ),
        unit=("units", "ユニット"),
    )
    n_batches: int = param(
        16,
        ge=2,
        le=64,
        title=("Batches per example", "例ごとのバッチ数"),
        help=(
            "How many batches with different, randomly drawn batch-mates each fixed "
            "example is encoded in.",
            "固定した各例を、一緒に入る他の例をランダムに変えた何通りのバッチで符号化するか。",
        ),
    )


METRICS: dict[str, Label] = {
    "latent_shift_max_abs": Label(
        "largest change of a latent mean across batches, chosen normalisation",
        "バッチを変えたときの潜在平均の最大の変化（選んだ正規化）",
    ),
    "latent_shift_relative": Label(
        "movement of a latent mean across batches, relative to the spread between "
        "examples, chosen normalisation",
        "バッチを変えたときの潜在平均の動き、例どうしのばらつきに対する割合（選んだ正規化）",
    ),
    "reference_latent_shift_max_abs": Label(
        "largest change of a latent mean across batches, without normalisation",
        "バッチを変えたときの潜在平均の最大の変化（正規化なし）",
    ),
    "reference_latent_shift_relative": Label(
        "movement of a latent mean across batches, relative to the spread between "
        "examples, without normalisation",
        "バッチを変えたときの潜在平均の動き、例どうしのばらつきに対する割合（正規化なし）",
    ),
    "elbo_train_mode": Label(
        "held-out ELBO in training mode (batch statistics), chosen normalisation",
        "訓練モード（バッチの統計量）での検証データの ELBO（選んだ正規化）",
        unit="nats",
        unit_ja="ナット",
    ),
    "elbo_eval_mode": Label(
        "held-out ELBO in evaluation mode (running statistics), chosen normalisation",
        "評価モード（移動平均の統計量）での検証データの ELBO（選んだ正規化）",
        unit="nats",
        unit_ja="ナット",
    ),
    "elbo_eval_minus_train": Label(
        "ELBO in evaluation mode minus training mode, chosen normalisation",
        "評価モードと訓練モードの ELBO の差（選んだ正規化）",
        unit="nats",
        unit_ja="ナット",
    ),
    "reference_elbo_train_mode": Label(
        "held-out ELBO in training mode, without normalisation",
        "訓練モードでの検証データの ELBO（正規化なし）",
        unit="nats",
        unit_ja="ナット",
    ),
    "reference_elbo_eval_mode": Label(
        "held-out ELBO in evaluation mode, without normalisation",
        "評価モードでの検証データの ELBO（正規化なし）",
        unit="nats",
        unit_ja="ナット",
    ),
    "reference_elbo_eval_minus_train": Label(
        "ELBO in evaluation mode minus training mode, without normalisation",
        "評価モードと訓練モードの ELBO の差（正規化なし）",
        unit="nats",
        unit_ja="ナット",
    ),
    "batch_dependence_shows": Label(
        "encoding depends on the batch (movement above 1%)",
        "符号化がバッチに依存する（動きが 1% 超）",
    ),
    "reference_batch_independent": Label(
        "without normalisation the encoding is the same in every batch",
        "正規化なしでは符号化がどのバッチでも同じ",
    ),
}
# The claim: the encoding moves by more than 1% with the chosen normalisation, and not
# at all (up to 1e-6) without it.
VERDICT_METRICS = ("latent_shift_relative", "reference_latent_shift_max_abs")


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the batch dependence: with batch norm, yes; layer norm
    or no normalisation make each encoding independent of its batch."""
    return p.norm == "batch"
