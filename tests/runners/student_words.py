"""Checks that an experiment speaks to students: every parameter and metric has a label
in both languages, the verdict's metrics are named, the figures come in both languages
and the finding reads as plain words (no code names, no "1 times", no 1e+03)."""

from __future__ import annotations

import re

from runners import registry
from runners.labels import label_for
from runners.result import Result

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
CODE_NAME = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")  # snake_case identifiers
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")
# "1 times the error", "0.4 times", "1 倍", and verdicts tacked onto the numbers.
AWKWARD = re.compile(r"(?<![\d.])(?:1(?:\.0+)?|0\.\d+) (?:times|倍)|so the claim|claim showed")


def check_params(name: str) -> None:
    model = registry.spec(name).Params
    schema, fields = model.model_json_schema(), model.model_fields
    for field, prop in schema["properties"].items():
        where = f"{name}.{field}"
        assert prop.get("title") and prop.get("description"), f"{where}: English label/help"
        # Set by the spec, not pydantic's default made from the code name ("N Queries").
        assert fields[field].title, f"{where}: title is the code name"
        ja = prop.get("x-ja") or {}
        assert JAPANESE.search(ja.get("title", "")), f"{where}: Japanese label"
        assert JAPANESE.search(ja.get("description", "")), f"{where}: Japanese help"
        assert set(prop.get("x-unit", {})) == {"en", "ja"}, f"{where}: unit per language"


def check_result(name: str, result: Result) -> None:
    spec = registry.spec(name)
    metrics = spec.METRICS
    for key in result.metrics:
        label = label_for(metrics, key)
        assert label is not None, f"{name}: metric {key!r} has no label"
        assert label.en.strip() and JAPANESE.search(label.ja), f"{name}: {key!r} label words"
        assert not CODE_NAME.search(label.en), f"{name}: {key!r} English label is a code name"
    assert spec.VERDICT_METRICS, f"{name}: no verdict metrics"
    for key in spec.VERDICT_METRICS:
        assert key in result.metrics, f"{name}: verdict metric {key!r} not in the run's metrics"

    assert result.figure_langs == ("en", "ja"), f"{name}: figures in both languages"
    half = len(result.figures) // 2
    assert half >= 1 and len(result.figures) == 2 * half
    for en, ja in zip(result.figures[:half], result.figures[half:], strict=True):
        assert en != ja, f"{name}: the Japanese figure is the English one"

    for lang, text in result.finding.items():
        where = f"{name} finding[{lang}]: {text}"
        assert not CODE_NAME.search(text), f"{where} (code name)"
        assert not SCIENTIFIC.search(text), f"{where} (e-notation)"
        assert not AWKWARD.search(text), f"{where} (awkward wording)"
    assert JAPANESE.search(result.finding["ja"])
