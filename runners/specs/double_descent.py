"""Spec: double descent of least squares on random ReLU features."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NAME = "double_descent"

TITLE = {
    "en": "Double descent: test error peaks where the model can just interpolate",
    "ja": "二重降下: モデルがちょうど補間できる所でテスト誤差が山になる",
}

PEAK_FACTOR = 10.0

CLAIM = {
    "en": (
        "For minimum-norm least squares on p random ReLU features fitted to n noisy "
        "points, the test error as p grows from n/10 to 10n peaks near the "
        "interpolation threshold (highest error at p between n/2 and 2n), and the peak is "
        f"at least {PEAK_FACTOR:g} times the error at both ends of the sweep."
    ),
    "ja": (
        "n 個のノイズのある点に p 個のランダム ReLU 特徴で最小ノルム最小二乗を当てはめると、"
        "p を n/10 から 10n まで増やしたときテスト誤差は補間しきい値の近く（p が n/2 から 2n の間）"
        f"で最大になり、その山は掃引の両端の誤差の {PEAK_FACTOR:g} 倍以上になる。"
    ),
}

TIME_BUDGET_S = 40.0


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ridge: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description="Ridge penalty on the output weights (0 = minimum-norm interpolation).",
    )
    n_train: int = Field(default=100, ge=20, le=300, description="Training points n.")
    input_dim: int = Field(default=10, ge=1, le=50, description="Dimension of the inputs.")
    noise: float = Field(
        default=0.5, ge=0.0, le=2.0, description="Std of the noise added to training targets."
    )
    n_draws: int = Field(
        default=5, ge=1, le=11, description="Random feature draws per p (median taken)."
    )
    n_points: int = Field(
        default=21, ge=5, le=31, description="Feature counts p on the log grid n/10 .. 10n."
    )


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the peak at these settings: without a ridge penalty,
    yes; a ridge of 0.1 or more damps it away (the answer says so); in between it does
    not say."""
    if p.ridge == 0:
        return True
    return False if p.ridge >= 0.1 else None
