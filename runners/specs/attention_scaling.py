"""Spec: why dot-product attention divides its logits by sqrt(d)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from runners.labels import Label, param

NAME = "attention_scaling"

TITLE = {
    "en": "Why attention logits are divided by sqrt(d)",
    "ja": "アテンションのロジットを sqrt(d) で割る理由",
}

VAR_TOL = 0.15

SATURATION_FACTOR = 0.5

STEADY_TOL = 0.10

CLAIM = {
    "en": (
        "For queries and keys with independent unit-variance components, unscaled "
        f"logits q.k have variance about d (variance/d within {VAR_TOL:.0%} of 1 at every "
        "d), and as d grows the softmax saturates: from the smallest to the largest d its "
        f"entropy and gradient norm fall below {SATURATION_FACTOR:.0%} of their starting "
        "values. Divided by sqrt(d), the logits keep variance about 1 and the entropy "
        f"stays within {STEADY_TOL:.0%}."
    ),
    "ja": (
        "成分が独立で分散 1 のクエリとキーでは、スケーリングしないロジット q.k の分散はほぼ d "
        f"（どの d でも 分散/d が 1 から {VAR_TOL:.0%} 以内）で、d が大きくなると softmax が"
        "飽和する。最小の d から最大の d までにエントロピーと勾配ノルムは初めの値の "
        f"{SATURATION_FACTOR:.0%} 未満に下がる。sqrt(d) で割ると分散はほぼ 1 のままで、"
        f"エントロピーの変化は {STEADY_TOL:.0%} 以内に収まる。"
    ),
}

TIME_BUDGET_S = 20.0

Dim = Annotated[int, Field(ge=2, le=1024)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: bool = param(
        False,
        title=("Divide by √d", "√d で割る"),
        help=(
            "Whether the logits under test are divided by √d: off (the default) tests the "
            "unscaled logits the claim is about; on, no saturation should show.",
            "テストするロジットを √d で割るかどうか。オフ（既定）では主張の対象である"
            "スケーリングなしのロジットを調べ、オンでは飽和は現れないはずです。",
        ),
    )
    dims: list[Dim] = param(
        [16, 32, 64, 128, 256, 512, 1024],
        min_length=2,
        max_length=8,
        title=("Dimensions d tried", "試す次元 d"),
        help=(
            "The query and key dimensions d to sweep, each from 2 to 1024.",
            "掃引するクエリとキーの次元 d の一覧（それぞれ 2 から 1024）。",
        ),
    )
    n_queries: int = param(
        256,
        ge=16,
        le=512,
        title=("Number of queries", "クエリの数"),
        help=(
            "How many queries are drawn for each d, each with its own set of keys.",
            "d ごとに引くクエリの数。クエリごとに別々のキーの組を引きます。",
        ),
    )
    n_keys: int = param(
        64,
        ge=2,
        le=256,
        title=("Number of keys", "キーの数"),
        help=(
            "How many keys each query attends over (the sequence length).",
            "各クエリが注意を向けるキーの数（系列の長さ）。",
        ),
    )


_TESTED = ("tested logits", "テストしたロジット")
_SCALED = ("logits divided by √d", "√d で割ったロジット")


def _about(whose: tuple[str, str], en: str, ja: str, **unit: str) -> Label:
    return Label(f"{whose[0]}: {en}", f"{whose[1]}の{ja}", **unit)


_TIMES = {"unit": "×", "unit_ja": "倍"}

METRICS: dict[str, Label] = {
    "tested_arm_is_scaled": Label(
        "the tested logits are divided by √d", "テストするロジットを √d で割っている"
    ),
    "tested_max_abs_var_over_d_minus_1": _about(
        _TESTED, "largest gap of variance / d from 1", "分散 / d と 1 との差（最大）"
    ),
    "tested_entropy_ratio_last_to_first": _about(
        _TESTED,
        "entropy at the largest d compared with the smallest d",
        "エントロピーの比（最大の d / 最小の d）",
        **_TIMES,
    ),
    "tested_grad_norm_ratio_last_to_first": _about(
        _TESTED,
        "gradient norm at the largest d compared with the smallest d",
        "勾配ノルムの比（最大の d / 最小の d）",
        **_TIMES,
    ),
    "tested_entropy_at_max_d": _about(
        _TESTED,
        "softmax entropy at the largest d",
        "最大の d での softmax のエントロピー",
        unit="nats",
        unit_ja="ナット",
    ),
    "tested_max_weight_at_max_d": _about(
        _TESTED,
        "mean largest attention weight at the largest d",
        "最大の d での最大アテンション重み（平均）",
    ),
    "other_entropy_ratio_last_to_first": _about(
        ("logits not under test", "テストしていない方のロジット"),
        "entropy at the largest d compared with the smallest d",
        "エントロピーの比（最大の d / 最小の d）",
        **_TIMES,
    ),
    "scaled_max_abs_var_minus_1": _about(
        _SCALED, "largest gap of the variance from 1", "分散と 1 との差（最大）"
    ),
    "scaled_entropy_spread": _about(
        _SCALED,
        "spread of the entropy across d (largest / smallest − 1)",
        "エントロピーの d によるばらつき（最大 / 最小 − 1）",
    ),
    "unscaled_var_over_d_at_max_d": _about(
        ("logits without scaling", "スケーリングなしのロジット"),
        "variance / d at the largest d",
        "最大の d での 分散 / d",
    ),
    "scaled_var_at_max_d": _about(_SCALED, "variance at the largest d", "最大の d での分散"),
    "tested_saturates": Label(
        "the softmax saturates for the tested logits", "テストしたロジットで softmax が飽和する"
    ),
    "scaled_steady": Label(
        "logits divided by √d keep variance and entropy steady",
        "√d で割ったロジットでは分散とエントロピーが安定している",
    ),
}
# The claim: the tested (unscaled) logits saturate the softmax, the scaled ones do not.
VERDICT_METRICS = (
    "tested_saturates",
    "tested_entropy_ratio_last_to_first",
    "tested_grad_norm_ratio_last_to_first",
    "scaled_steady",
)


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the claim's effect (saturation) at these settings:
    unscaled logits saturate; scaled by sqrt(d) they do not."""
    return not p.scale
