"""What the fault tests do to a real ``attune serve`` (``tests.attune_serve.ServeProcess``):
run the operator's command line, and send traffic whose feedback they can count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.attune_serve import REPO


def cli(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``attune ARGS`` in a child process (the operator's command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env["PYTHONPATH"] = str(REPO)
    if data_dir is not None:
        env["ATTUNE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def traffic(http: httpx.Client, users: int, turns: int, prefix: str = "u") -> dict[str, int]:
    """Two personas (even users like brief answers, odd ones thorough); returns the feedback
    acknowledged per user."""
    acked: dict[str, int] = {}
    for u in range(users):
        user = f"{prefix}{u}"
        liked = "brief" if u % 2 == 0 else "thorough"
        for t in range(turns):
            r = http.post("/v1/decisions", json={"user_id": user, "message": f"q{t} of {user}"})
            assert r.status_code == 200, r.text
            d = r.json()
            up = d["strategy"]["levels"]["length"] == liked
            r = http.post(
                "/v1/feedback",
                json={
                    "user_id": user,
                    "decision_id": d["decision_id"],
                    "kind": "thumbs",
                    "value": "up" if up else "down",
                },
            )
            assert r.status_code == 202, r.text
            acked[user] = acked.get(user, 0) + 1
    return acked
