"""The value every experiment returns, and helpers to build it honestly."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Number = int | float | bool
# Picks a figure's text: ``t("test error", "テスト誤差")``.
Text = Callable[[str, str], str]
FIGURE_LANGS = ("en", "ja")
# Fonts with Japanese glyphs, in order of preference (Debian: fonts-ipafont-gothic).
JAPANESE_FONTS = ("IPAexGothic", "IPAGothic", "IPAPGothic", "Noto Sans CJK JP", "TakaoGothic")


@dataclass
class Result:
    """What one run of an experiment produced.

    ``metrics`` holds scalars (shown as a table) and ``series`` lists of numbers
    (curves behind the figures). ``finding`` is one sentence per language built
    from the metrics; ``supports_claim`` is computed from the metrics.
    """

    metrics: dict[str, Number]
    figures: list[bytes]
    finding: dict[str, str]
    supports_claim: bool | None  # None: the run cannot tell (e.g. training diverged)
    series: dict[str, list[float]] = field(default_factory=dict)
    # The figures hold one set per language, in this order (``figures_in_each_language``);
    # empty: one set, in English.
    figure_langs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form without the figure bytes."""
        return {
            "metrics": self.metrics,
            "series": self.series,
            "finding": self.finding,
            "supports_claim": self.supports_claim,
            "figure_count": len(self.figures),
            "figure_langs": list(self.figure_langs),
        }


def _finite(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value))


def settle_divergence(result: Result) -> Result:
    """A run whose numbers became infinite or NaN (training diverged, an overflow) as a
    finding, not an error: the finite metrics and series are kept, ``diverged`` is set,
    and the run says it cannot test the claim (``supports_claim`` None)."""
    bad = [k for k, v in result.metrics.items() if not _finite(v)]
    bad += [k for k, vs in result.series.items() if not all(_finite(v) for v in vs)]
    if not bad:
        return result
    names = ", ".join(sorted(set(bad))[:5])
    return Result(
        metrics={**{k: v for k, v in result.metrics.items() if _finite(v)}, "diverged": True},
        figures=result.figures,
        finding={
            "en": f"Training diverged at these settings: some values became infinite or "
            f"not a number ({names}), so this run cannot test the claim. Try less extreme "
            "settings, such as a smaller learning rate.",
            "ja": f"この設定では学習が発散しました。一部の値が無限大または非数になったため"
            f"（{names}）、この実行では主張を検証できません。学習率を小さくするなど、"
            "より穏やかな設定をお試しください。",
        },
        supports_claim=None,
        series={k: vs for k, vs in result.series.items() if all(_finite(v) for v in vs)},
        figure_langs=result.figure_langs,
    )


def figure_png(fig: Any) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _use_japanese_font() -> None:
    """Let matplotlib draw Japanese text: a Japanese font as a second family, so Latin
    text keeps the default font and only glyphs it lacks fall back (matplotlib >= 3.6)."""
    import matplotlib as mpl
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    families = list(mpl.rcParams["font.family"])
    japanese = next((name for name in JAPANESE_FONTS if name in have), None)
    if japanese and japanese not in families:
        mpl.rcParams["font.family"] = [*families, japanese]


def figures_in_each_language(draw: Callable[[Text], list[Any]]) -> dict[str, Any]:
    """Draw the run's figures once per language, for ``Result(**...)``: ``draw(t)``
    returns matplotlib figures whose text it took from ``t(english, japanese)``."""
    _use_japanese_font()
    pngs: list[bytes] = []
    for lang in FIGURE_LANGS:
        pick: Text = (lambda en, ja: en) if lang == "en" else (lambda en, ja: ja)
        pngs += [figure_png(fig) for fig in draw(pick)]
    return {"figures": pngs, "figure_langs": FIGURE_LANGS}
