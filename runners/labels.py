"""Words for the student: labels and units of an experiment's parameters and metrics in
both languages (torch-free, imported by the specs and the web role).

A spec declares each parameter with ``param(...)`` and lists its metrics in ``METRICS``:
``{key: Label(...)}``, where a key may hold one ``{name}`` placeholder for metrics
named after a setting (``"loss_batch_{b}"`` labels ``loss_batch_8`` with ``b=8``).
``VERDICT_METRICS`` names the few the verdict rests on; the page shows them first.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from pydantic import Field

LANGS = ("en", "ja")


@dataclass(frozen=True)
class Label:
    """A metric's name in each language and its unit (``""``: none). A unit is written
    the same in both languages unless ``unit_ja`` is given (``"×"``, ``"s"``; ``"steps"``
    / ``"ステップ"``)."""

    en: str
    ja: str
    unit: str = ""
    unit_ja: str | None = None

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["unit_ja"] = self.unit if self.unit_ja is None else self.unit_ja
        return doc


def param(
    default: Any,
    *,
    title: tuple[str, str],
    help: tuple[str, str],
    unit: tuple[str, str] | str = "",
    **constraints: Any,
) -> Any:
    """A pydantic ``Field`` with the parameter's label and help in English (the JSON
    Schema's ``title`` and ``description``) and Japanese (``x-ja``), and its unit."""
    unit_en, unit_ja = (unit, unit) if isinstance(unit, str) else unit
    return Field(
        default=default,
        title=title[0],
        description=help[0],
        json_schema_extra={
            "x-ja": {"title": title[1], "description": help[1]},
            "x-unit": {"en": unit_en, "ja": unit_ja},
        },
        **constraints,
    )


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^_]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


def label_for(metrics: dict[str, Label], key: str) -> Label | None:
    """The label of metric ``key``: an exact entry, else the template it matches, with
    the placeholder filled in. None: the spec does not label it."""
    if key in metrics:
        return metrics[key]
    for template, label in metrics.items():
        if "{" not in template:
            continue
        found = _pattern(template).fullmatch(key)
        if found:
            values = found.groupdict()
            return Label(
                label.en.format(**values),
                label.ja.format(**values),
                label.unit,
                label.unit_ja,
            )
    return None


def labelled(metrics: dict[str, Label], keys: list[str]) -> dict[str, dict[str, Any]]:
    """``{key: label as JSON}`` for the metric keys a run produced that the spec labels."""
    out = {}
    for key in keys:
        label = label_for(metrics, key)
        if label is not None:
            out[key] = label.as_json()
    return out


# --- numbers and comparisons in findings ------------------------------------------------


def num(x: float, digits: int = 3) -> str:
    """A number as a student reads it: ``digits`` significant digits, no exponent between
    0.001 and 100000 (``1000``, not ``1e+03``), ``2.1×10⁻⁵`` outside."""
    if isinstance(x, bool) or not math.isfinite(x):
        return str(x)
    if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e5:
        return f"{int(x):d}"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        text = f"{x:.{digits}g}"
        if "e" in text:  # .3g of 1234.5 is 1.23e+03
            text = f"{x:.0f}"
        return text
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def ratio_phrase(ratio: float, of_en: str, of_ja: str) -> dict[str, str]:
    """``ratio`` times a reference, in words: "4.2 times the error at p = 10", "about
    the same as ...", "38% of ..." (never "1 times" or "0.4 times"). Japanese:
    "p = 10 の誤差の 4.2 倍", "... とほぼ同じ", "... の 38%"."""
    if not math.isfinite(ratio):
        return {"en": f"not comparable with {of_en}", "ja": f"{of_ja}とは比べられない"}
    if 0.95 <= ratio <= 1.05:
        return {"en": f"about the same as {of_en}", "ja": f"{of_ja}とほぼ同じ"}
    if ratio > 1:
        return {"en": f"{num(ratio, 2)} times {of_en}", "ja": f"{of_ja}の {num(ratio, 2)} 倍"}
    percent = f"{100 * ratio:.0f}%" if ratio >= 0.01 else f"{num(100 * ratio, 2)}%"
    return {"en": f"{percent} of {of_en}", "ja": f"{of_ja}の {percent}"}
