"""Spec: why dot-product attention divides its logits by sqrt(d)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

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

    scale: bool = Field(
        default=False,
        description=(
            "Divide the logits under test by sqrt(d). Off (default) tests the unscaled "
            "logits the claim is about; on, no saturation should show."
        ),
    )
    dims: list[Dim] = Field(
        default=[16, 32, 64, 128, 256, 512, 1024],
        min_length=2,
        max_length=8,
        description="Query/key dimensions d to sweep (each 2 to 1024).",
    )
    n_queries: int = Field(
        default=256, ge=16, le=512, description="Queries drawn per d, each with its own keys."
    )
    n_keys: int = Field(
        default=64, ge=2, le=256, description="Keys each query attends over (sequence length)."
    )


def expected(p: Params) -> bool | None:
    """Whether the answer predicts the claim's effect (saturation) at these settings:
    unscaled logits saturate; scaled by sqrt(d) they do not."""
    return not p.scale
