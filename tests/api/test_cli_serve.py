"""``attune serve --bus sqlite:///path`` keeps its store in that file (a real server process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streaming.sqlite.store import Store

REPO = Path(__file__).resolve().parents[2]
KEY = "key-acme-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "attune serve exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("attune serve did not become ready")


def test_serve_bus_sqlite_uses_that_file(tmp_path: Path) -> None:
    store_file = tmp_path / "elsewhere" / "custom.sqlite"
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env["ATTUNE_API_KEYS"] = f"acme:{KEY}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--bus",
            f"sqlite://{store_file}",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        r = httpx.post(
            f"{url}/v1/decisions",
            json={"user_id": "ana", "message": "hi"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 200, r.text
        decision_id = r.json()["decision_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert str(store_file) in out.decode()
    assert not (data_dir / "attune.sqlite").exists()
    store = Store(store_file)
    try:
        ids = [e.event_id for e in store.iter_events(kinds=["decision"])]
    finally:
        store.close()
    assert ids == [decision_id]
