"""Helpers shared by the benchmarks (not tests: they print figures)."""

from __future__ import annotations

import resource
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def seeded_sqlite() -> str:
    """A fresh SQLite database in a temp dir, migrated, with the seed knowledge imported."""
    from knowledge import importer, migrate
    from knowledge.db import make_engine, make_sessionmaker
    from runners import registry

    url = f"sqlite:///{tempfile.mkdtemp(prefix='ra-bench-')}/bench.db"
    migrate.upgrade(url)
    engine = make_engine(url)
    importer.import_path(
        make_sessionmaker(engine), ROOT / "knowledge" / "content", registry.names()
    )
    engine.dispose()
    return url


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {statistics.median(ms):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms   n={len(ms)}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
