"""The registered experiments. Only names listed here can ever run.

Each experiment has two modules:

- ``runners.specs.<name>``, free of torch, so the web role can describe and validate a
  run without importing it:
  ``NAME`` (str, equal to its key here); ``TITLE`` and ``CLAIM`` ({"en": ..., "ja": ...};
  ``supports_claim`` checks the claim); ``Params`` (a pydantic model, every field
  bounded, with defaults, declared with ``runners.labels.param``); ``METRICS`` and
  ``VERDICT_METRICS`` (the metrics' words, ``runners.labels``); ``expected(params)``;
  ``TIME_BUDGET_S`` (wall-clock budget at the worst allowed params);
- ``runners.experiments.<name>``, the run: ``run(params: Params, seed: int) ->
  runners.result.Result``. Only the sandboxed child imports it, and an author running it
  from a shell (``python -m runners.experiments.<name> --param value``).

``ExperimentSpec`` and ``ExperimentRun`` type these two contracts.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel

if TYPE_CHECKING:
    from runners.labels import Label
    from runners.result import Result

# A fixed table, so user input never picks a module.
NAMES: tuple[str, ...] = (
    "local_minima_width",
    "online_vs_minibatch",
    "batchnorm_depth",
    "vae_batchnorm",
    "embedding_dimension",
    "attention_scaling",
    "double_descent",
)
# name -> the module the sandboxed child runs
EXPERIMENTS: dict[str, str] = {name: f"runners.experiments.{name}" for name in NAMES}
SPECS: dict[str, str] = {name: f"runners.specs.{name}" for name in NAMES}


class ExperimentSpec(Protocol):
    """What ``runners.specs.<name>`` provides (no torch)."""

    NAME: str
    TITLE: dict[str, str]
    CLAIM: dict[str, str]
    Params: type[BaseModel]
    TIME_BUDGET_S: float
    METRICS: dict[str, Label]  # each metric's words (``runners.labels``)
    VERDICT_METRICS: tuple[str, ...]  # the metrics ``supports_claim`` is computed from

    def expected(self, p: Any) -> bool | None:
        """Whether the answer predicts the claim's effect at these params (None: it does
        not say). A run is as expected when its ``supports_claim`` equals this."""
        ...


class ExperimentRun(Protocol):
    """What ``runners.experiments.<name>`` provides (imports torch)."""

    def run(self, params: BaseModel, seed: int) -> Result: ...


def as_expected(name: str, params: dict[str, Any], supports_claim: bool | None) -> bool | None:
    """Whether a run came out as the answer predicts for its params (None: no prediction,
    or the run could not tell)."""
    if supports_claim is None or name not in EXPERIMENTS:
        return None
    module = spec(name)
    try:
        predicted = module.expected(module.Params.model_validate(params))
    except ValueError:
        return None
    return None if predicted is None else predicted == supports_claim


class UnknownExperiment(KeyError):
    """Raised for a name that is not registered."""


def _module(table: dict[str, str], name: str) -> ModuleType:
    if name not in table:
        raise UnknownExperiment(name)
    return importlib.import_module(table[name])


def spec(name: str) -> ExperimentSpec:
    """The registered experiment's spec module (``TITLE``, ``CLAIM``, ``Params``, ...)."""
    return cast(ExperimentSpec, _module(SPECS, name))


def get(name: str) -> ExperimentRun:
    """The registered experiment's run module (imports torch)."""
    return cast(ExperimentRun, _module(EXPERIMENTS, name))


def source_files(name: str) -> list[Path]:
    """The spec's and the run's source files, found without importing either."""
    if name not in EXPERIMENTS:
        raise UnknownExperiment(name)
    found = [importlib.util.find_spec(table[name]) for table in (SPECS, EXPERIMENTS)]
    return [Path(s.origin) for s in found if s is not None and s.origin is not None]


def names() -> list[str]:
    return sorted(NAMES)
