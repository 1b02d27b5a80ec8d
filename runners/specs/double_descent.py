"""Spec: double descent of least squares on random ReLU features."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from runners.labels import Label, param

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

    ridge: float = param(
        0.0,
        ge=0.0,
        le=10.0,
        title=("Ridge penalty", "リッジ正則化の強さ"),
        help=(
            "Penalty on the output weights; 0 fits the minimum-norm solution that "
            "interpolates the training points.",
            "出力の重みへの罰則。0 では訓練点を補間する最小ノルム解を当てはめます。",
        ),
    )
    n_train: int = param(
        100,
        ge=20,
        le=300,
        title=("Training points n", "訓練点の数 n"),
        help=(
            "How many noisy points the model is fitted to.",
            "モデルを当てはめるノイズ付きの点の数。",
        ),
        unit=("points", "点"),
    )
    input_dim: int = param(
        10,
        ge=1,
        le=50,
        title=("Input dimension", "入力の次元"),
        help=("Dimension of each input point.", "各入力点の次元。"),
    )
    noise: float = param(
        0.5,
        ge=0.0,
        le=2.0,
        title=("Label noise", "ラベルのノイズ"),
        help=(
            "Standard deviation of the noise added to the training targets.",
            "訓練データの目標値に加えるノイズの標準偏差。",
        ),
    )
    n_draws: int = param(
        5,
        ge=1,
        le=11,
        title=("Draws per size", "サイズごとの試行回数"),
        help=(
            "Random feature sets drawn for each feature count; the median error is shown.",
            "特徴数ごとに引くランダム特徴の組の数。誤差は中央値を示します。",
        ),
    )
    n_points: int = param(
        21,
        ge=5,
        le=31,
        title=("Feature counts tried", "試す特徴数の個数"),
        help=(
            "How many feature counts p, evenly spaced on a log scale from n/10 to 10n.",
            "n/10 から 10n まで対数目盛りで等間隔に並べる特徴数 p の個数。",
        ),
    )


METRICS: dict[str, Label] = {
    "peak_test_error": Label("highest test error", "テスト誤差の最大値"),
    "peak_feature_count": Label("feature count p at the peak", "山の位置の特徴数 p"),
    "peak_feature_count_over_n": Label("peak position p / n", "山の位置 p / n"),
    "test_error_at_p_equal_n": Label("test error at p = n", "p = n でのテスト誤差"),
    "test_error_smallest_p": Label("test error, fewest features", "特徴数が最小のときのテスト誤差"),
    "test_error_largest_p": Label("test error, most features", "特徴数が最大のときのテスト誤差"),
    "peak_over_smallest_p_error": Label(
        "peak compared with the fewest features", "山と特徴数最小のときの比", unit="×", unit_ja="倍"
    ),
    "peak_over_largest_p_error": Label(
        "peak compared with the most features", "山と特徴数最大のときの比", unit="×", unit_ja="倍"
    ),
    "min_test_error": Label("lowest test error", "テスト誤差の最小値"),
    "train_error_largest_p": Label("training error, most features", "特徴数が最大のときの訓練誤差"),
    "peak_near_interpolation_threshold": Label(
        "peak between p = n/2 and 2n", "山が p = n/2 から 2n の間にある"
    ),
}
# The claim: a peak near p = n, at least PEAK_FACTOR times the error at both ends.
VERDICT_METRICS = (
    "peak_near_interpolation_threshold",
    "peak_over_smallest_p_error",
    "peak_over_largest_p_error",
)


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the peak at these settings: without a ridge penalty,
    yes; a ridge of 0.1 or more damps it away (the answer says so); in between it does
    not say."""
    if p.ridge == 0:
        return True
    return False if p.ridge >= 0.1 else None
