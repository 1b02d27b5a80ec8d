"""The one settings object: what it reads, how it refuses, and the README's table of it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from knowledge.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def readme_settings() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("### Settings (environment)", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_the_readme_table_lists_exactly_the_settings() -> None:
    assert readme_settings() == set(Settings.model_fields)


def test_values_come_from_the_environment_and_bad_ones_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("DROP_OLD_VECTORS", "1")
    s = Settings()
    assert (s.WEB_WORKERS, s.DROP_OLD_VECTORS, s.WEB_THREADS) == (3, True, 4)
    monkeypatch.setenv("WEB_THREADS", "")  # empty counts as unset
    assert Settings().WEB_THREADS == 4
    monkeypatch.setenv("WEB_WORKERS", "two")
    with pytest.raises(ValidationError, match="WEB_WORKERS"):
        Settings()


def test_a_process_with_a_bad_value_stops_at_start_with_its_name() -> None:
    res = subprocess.run(
        [sys.executable, "-c", "from service import create_app; create_app()"],
        env={"PATH": "/usr/bin:/bin", "EMBED_THREADS": "-1", "HOME": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode != 0 and "EMBED_THREADS" in res.stderr
