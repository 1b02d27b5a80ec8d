"""The registered experiments. Only names listed here can ever run.

Each experiment module exposes:

- ``NAME``: str, equal to its key here;
- ``TITLE``: {"en": ..., "ja": ...};
- ``CLAIM``: {"en": ..., "ja": ...}, the claim ``supports_claim`` checks;
- ``Params``: a pydantic model, every field bounded, with defaults;
- ``TIME_BUDGET_S``: wall-clock budget in seconds at the worst allowed params;
- ``run(params: Params, seed: int) -> runners.result.Result``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path; a fixed table so user input never picks a module.
EXPERIMENTS: dict[str, str] = {
    "local_minima_width": "runners.experiments.local_minima_width",
    "online_vs_minibatch": "runners.experiments.online_vs_minibatch",
    "batchnorm_depth": "runners.experiments.batchnorm_depth",
    "vae_batchnorm": "runners.experiments.vae_batchnorm",
    "embedding_dimension": "runners.experiments.embedding_dimension",
    "attention_scaling": "runners.experiments.attention_scaling",
    "double_descent": "runners.experiments.double_descent",
}


class UnknownExperiment(KeyError):
    """Raised for a name that is not registered."""


def get(name: str) -> ModuleType:
    """Import and return the registered experiment module called ``name``."""
    if name not in EXPERIMENTS:
        raise UnknownExperiment(name)
    return importlib.import_module(EXPERIMENTS[name])


def names() -> list[str]:
    return sorted(EXPERIMENTS)
