"""The web role refuses several workers without a shared SECRET_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_several_workers_need_a_secret_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(WEB_WORKERS="2", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "service/gunicorn_conf.py",
         "--bind", "127.0.0.1:0", "service.wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr + proc.stdout
