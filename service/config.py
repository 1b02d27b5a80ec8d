"""Settings from the environment, with safe defaults for the embedded mode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEED_CONTENT = PROJECT_ROOT / "knowledge" / "content"


def default_settings(instance_path: str) -> dict[str, Any]:
    instance = Path(instance_path)
    return {
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", f"sqlite:///{instance / 'runnable_answers.db'}"
        ),
        "QUEUE_URL": os.environ.get("QUEUE_URL", f"sqlite:///{instance / 'queue.db'}"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "dev-only-not-secret"),
        "MAX_CONTENT_LENGTH": 256 * 1024,  # request bodies over this get 413
        "JSON_SORT_KEYS": False,
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", ""),
    }
