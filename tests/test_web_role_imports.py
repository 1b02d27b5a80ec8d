"""The web role answers, describes experiments and queues runs without importing torch.

torch and matplotlib cost a web process about 200 MB; only the sandboxed child needs them.
The check runs in a fresh interpreter, since this test process has imported both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import json, sys
from service import create_app

client = create_app({"TESTING": True, "SERVER_NAME": "localhost"}).test_client()
status = {
    "ask": client.post("/api/v1/ask", json={"question": "Why divide attention logits by sqrt(d)?"}),
    "experiments": client.get("/api/v1/experiments"),
    "run": client.post("/api/v1/entries/attention-sqrt-d-scaling/runs", json={"params": {}}),
    "bad_params": client.post(
        "/api/v1/entries/attention-sqrt-d-scaling/runs", json={"params": {"n_keys": 1}}
    ),
}
heavy = sorted(name for name in ("torch", "matplotlib") if name in sys.modules)
print(json.dumps({"status": {k: r.status_code for k, r in status.items()}, "heavy": heavy}))
"""


def test_web_role_never_imports_torch(db_url: str, queue_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "QUEUE_URL": queue_url}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == {"ask": 200, "experiments": 200, "run": 202, "bad_params": 400}
    assert report["heavy"] == []
