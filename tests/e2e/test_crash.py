"""A real ``attune serve`` process, killed with SIGKILL while feedback streams in, restarted:
every acknowledged feedback event is counted exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.attune_serve import ServeProcess


def test_sigkill_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", env={"ATTUNE_WAIT_WINDOW_S": "3600"}).start()
    acked: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with server.client(timeout=5) as http:
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
        server.kill()
        stop.set()
        thread.join(timeout=10)
    finally:
        server.kill()
    assert len(acked) > 20, "too little traffic before the kill to test anything"

    server.start()  # the same folder and port
    try:
        with server.client() as http:
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
        server.stop()
