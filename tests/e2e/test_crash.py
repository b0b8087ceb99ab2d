"""A real ``attune serve`` process, killed with SIGKILL while feedback streams in, restarted:
every acknowledged feedback event is counted exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "key-acme-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        ATTUNE_API_KEYS=f"acme:{KEY}",
        ATTUNE_WAIT_WINDOW_S="3600",
        ATTUNE_DATA_DIR=str(data_dir),
        ATTUNE_PORT=str(port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"attune serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"attune serve never became ready:\n{log.read_text()}")


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    return tmp_path


def test_sigkill_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path / "data", port, log)
    acked: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=5) as http:
            i = 0
            while not stop.is_set():
                try:
                    did = http.post("/v1/decisions", json={"user_id": "ana"}).json()["decision_id"]
                    r = http.post(
                        "/v1/feedback",
                        json={
                            "user_id": "ana",
                            "decision_id": did,
                            "kind": "rating",
                            "value": 1 + i % 5,
                            "event_id": f"e{i}",
                        },
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 202 and r.json()["status"] == "accepted":
                    acked.append(f"e{i}")
                i += 1

    try:
        thread = threading.Thread(target=traffic)
        thread.start()
        time.sleep(3.0)  # long enough for at least one checkpoint, so recovery also replays
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        thread.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) > 20, "too little traffic before the kill to test anything"

    proc = start_server(tmp_path / "data", port, log)
    try:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=10) as http:
            export = http.get("/v1/users/ana/export").json()
            logged = [
                e["event_id"].removeprefix("fb:")
                for e in export["events"]
                if e["kind"] == "feedback"
            ]
            assert set(acked) <= set(logged)  # nothing acknowledged was lost
            assert len(logged) - len(acked) <= 1  # at most the one in flight at the kill
            evidence = http.get("/v1/users/ana/profile").json()["evidence"]
            assert evidence["feedback_events"] == len(logged)  # each applied exactly once
            # Resending everything acknowledged changes nothing.
            did = export["events"][0]["event_id"]
            for eid in acked[:10]:
                r = http.post(
                    "/v1/feedback",
                    json={
                        "user_id": "ana",
                        "decision_id": did,
                        "kind": "rating",
                        "value": 3,
                        "event_id": eid,
                    },
                )
                assert r.json()["status"] == "duplicate"
            time.sleep(0.3)
            again = http.get("/v1/users/ana/profile").json()["evidence"]
            assert again["feedback_events"] == len(logged)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
