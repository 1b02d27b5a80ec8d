"""Experiments for entries 1-3: local minima vs width, online vs minibatch SGD, batch norm.

Each experiment must support its claim at the defaults, fail to at its breaking
params, give identical metrics for the same seed and reject out-of-bounds params.
"""

from __future__ import annotations

import math
from functools import cache
from types import ModuleType
from typing import Any

import pydantic
import pytest

from runners import registry
from runners.result import Result
from tests.runners.student_words import check_params, check_result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# name -> params under which the claim must not show.
BREAKING: dict[str, dict[str, Any]] = {
    "local_minima_width": {"widths": [2]},
    "online_vs_minibatch": {"budget": "updates"},
    "batchnorm_depth": {"learning_rate": 0.01},
}

OUT_OF_BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("local_minima_width", {"widths": [0]}),
    ("local_minima_width", {"widths": [2, 3, 4, 5, 6, 7, 8]}),
    ("local_minima_width", {"widths": []}),
    ("local_minima_width", {"n_inits": 100_000}),
    ("local_minima_width", {"steps": 10}),
    ("local_minima_width", {"optimizer": "lbfgs"}),
    ("local_minima_width", {"unknown": 1}),
    ("online_vs_minibatch", {"budget": "epochs"}),
    ("online_vs_minibatch", {"redundancy": 0}),
    ("online_vs_minibatch", {"n_prototypes": 100_000}),
    ("online_vs_minibatch", {"n_features": 1000}),
    ("online_vs_minibatch", {"label_noise": -0.1}),
    ("online_vs_minibatch", {"unknown": 1}),
    ("batchnorm_depth", {"learning_rate": 5.0}),
    ("batchnorm_depth", {"depth": 0}),
    ("batchnorm_depth", {"width": 4096}),
    ("batchnorm_depth", {"steps": 100_000}),
    ("batchnorm_depth", {"unknown": 1}),
]

NAMES = sorted(BREAKING)


def _module(name: str) -> ModuleType:
    return registry.get(name)


@cache
def _default_result(name: str) -> Result:
    mod = _module(name)
    return mod.run(mod.Params(), seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_module_interface(name: str) -> None:
    spec = registry.spec(name)
    assert name == spec.NAME
    for text in (spec.TITLE, spec.CLAIM):
        assert set(text) == {"en", "ja"}
        assert all(isinstance(v, str) and v for v in text.values())
    assert spec.Params.model_config.get("extra") == "forbid"
    for field_name, info in spec.Params.model_fields.items():
        assert info.description, f"{name}.{field_name} has no description"
    assert 0 < spec.TIME_BUDGET_S <= 60
    # The sandboxed child validates with the run module's Params: the same model.
    assert _module(name).Params is spec.Params and callable(_module(name).run)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_support_claim(name: str) -> None:
    result = _default_result(name)
    assert result.supports_claim is True, result.finding["en"]
    assert result.metrics
    for key, value in result.metrics.items():
        assert isinstance(value, int | float | bool), key
        assert math.isfinite(value), key
    for key, values in result.series.items():
        assert all(math.isfinite(v) for v in values), key
    assert result.figures
    assert all(fig.startswith(PNG_SIGNATURE) for fig in result.figures)
    assert set(result.finding) == {"en", "ja"}
    assert all(result.finding.values())


@pytest.mark.parametrize("name", NAMES)
def test_breaking_params_do_not_support_claim(name: str) -> None:
    mod = _module(name)
    result = mod.run(mod.Params(**BREAKING[name]), seed=0)
    assert result.supports_claim is False, result.finding["en"]
    assert all(math.isfinite(v) for v in result.metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_metrics(name: str) -> None:
    mod = _module(name)
    again = mod.run(mod.Params(), seed=0)
    assert again.metrics == _default_result(name).metrics
    assert again.supports_claim == _default_result(name).supports_claim


@pytest.mark.parametrize(("name", "bad"), OUT_OF_BOUNDS)
def test_out_of_bounds_params_rejected(name: str, bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        _module(name).Params(**bad)


@pytest.mark.parametrize("name", NAMES)
def test_words_for_students(name: str) -> None:
    check_params(name)
    check_result(name, _default_result(name))
    broken = _module(name)
    check_result(name, broken.run(broken.Params(**BREAKING[name]), seed=0))
