"""The value every experiment returns, and helpers to build it honestly."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

Number = int | float | bool


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
    supports_claim: bool
    series: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form without the figure bytes."""
        return {
            "metrics": self.metrics,
            "series": self.series,
            "finding": self.finding,
            "supports_claim": self.supports_claim,
            "figure_count": len(self.figures),
        }


def figure_png(fig: Any) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
