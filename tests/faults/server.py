"""``attune serve`` as a real child process, for the fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
KEY = "fault-test-key-acme-0123456789"
OPERATOR_KEY = "fault-test-operator-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``attune serve`` process on ``data_dir``; ``settings`` is a TOML text."""

    def __init__(self, data_dir: Path, log: Path, settings: str = "", **env: str) -> None:
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = log.with_suffix(".toml")
        self.settings.write_text(settings)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")},
            "ATTUNE_API_KEYS": f"acme:{KEY}",
            "ATTUNE_OPERATOR_KEYS": OPERATOR_KEY,
            "ATTUNE_DATA_DIR": str(data_dir),
            "ATTUNE_PORT": str(self.port),
            "ATTUNE_SETTINGS": str(self.settings),
            "PYTHONPATH": str(REPO),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"attune serve exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"attune serve never became ready:\n{self.log.read_text()[-3000:]}")

    def client(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=HEADERS, timeout=timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


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
