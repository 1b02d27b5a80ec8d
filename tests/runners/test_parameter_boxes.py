"""Every experiment gives a valid run anywhere in its parameter box (property-based).

Parameters are drawn from each experiment's own Params schema (hypothesis leans towards
the bounds, where numerics break first) and run in the sandbox as users' runs are. A run
whose training diverges is a finding (``diverged``), never an error.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runners import registry
from runners.result_store import limits_for
from runners.sandbox import execute

# One draw per experiment by default (CI; hypothesis leans to the bounds); set
# RA_PARAM_BOX_EXAMPLES=20 for a longer search.
EXAMPLES = int(os.environ.get("RA_PARAM_BOX_EXAMPLES", "1"))


def _value(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in spec:
        return st.sampled_from(spec["enum"])
    kind = spec.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(spec.get("minimum"), spec.get("maximum"))
    if kind == "number":
        return st.floats(spec.get("minimum"), spec.get("maximum"), allow_nan=False)
    if kind == "array":
        return st.lists(
            _value(spec["items"]),
            min_size=spec.get("minItems", 0),
            max_size=spec.get("maxItems", 8),
            unique=bool(spec.get("uniqueItems")),
        )
    raise AssertionError(f"no strategy for {spec}")


def params_in_box(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    properties = model.model_json_schema()["properties"]
    return st.fixed_dictionaries({name: _value(spec) for name, spec in properties.items()})


@pytest.mark.parametrize("name", registry.names())
def test_any_parameters_in_bounds_give_a_valid_run(name: str) -> None:
    spec = registry.spec(name)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(params=params_in_box(spec.Params), seed=st.integers(0, 2**31 - 1))
    def check(params: dict[str, Any], seed: int) -> None:
        try:
            valid = spec.Params.model_validate(params)
        except ValueError:
            return  # a cross-field rule of the experiment refuses it up front (400)
        outcome = execute(registry.EXPERIMENTS[name], valid.model_dump(), seed, limits_for(name))
        assert outcome.status == "succeeded", (params, seed, outcome.error)
        assert outcome.result is not None and outcome.result.finding["en"]

    check()
