"""Memory notes and the pause in Kafka mode: a real broker, a worker process, two API replicas.

The same behaviour as the embedded store (tests/api/test_notes.py): supersede by key with
history, TTL expiry and retention on event time, pinned notes, retrieval into directives,
notes named in explanations, pause, export, erasure, and a fresh replica (a restart) that
materializes all of it from the changelog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.integration.kafka_harness import AUTH, KEY, WorkerProcess, fresh_bus_url

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    return fresh_bus_url(kafka_bootstrap, "notes", 2)


@pytest.fixture
def worker(kafka_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_url, "notes-w0", tmp_path)
    w.start()
    yield w
    w.stop()


def replica(url: str, tmp_path: Path) -> TestClient:
    settings = Settings(
        api_keys={KEY: "acme"}, data_dir=tmp_path, warm=False, bus=url, secret="s" * 32
    )
    return TestClient(create_app(settings))


def wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def add(client: TestClient, **body: Any) -> dict:
    r = client.post("/v1/users/ana/notes", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()


def notes(client: TestClient) -> dict[str, dict]:
    r = client.get("/v1/users/ana/notes", headers=AUTH)
    return {n["note_id"]: n for n in r.json()["notes"]} if r.status_code == 200 else {}


def decide(client: TestClient, message: str) -> dict:
    r = client.post("/v1/decisions", json={"user_id": "ana", "message": message}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def used(d: dict) -> list[str]:
    return [r["note_id"] for r in d["explanation"] if r["kind"] == "note"]


def test_notes_through_kafka(kafka_url: str, worker: WorkerProcess, tmp_path: Path) -> None:
    with replica(kafka_url, tmp_path / "a") as a:
        decide(a, "hello")  # the worker is up once the user's first record comes back
        wait(lambda: a.get("/v1/users/ana/profile", headers=AUTH).status_code == 200)
        old = add(a, text="Studies law in Madrid", key="background")
        new = add(a, text="Works as a data engineer in Madrid", key="background")
        pinned = add(a, text="Prefers metric units", pinned=True)
        short = add(a, text="Visiting Tokyo this week", ttl_s=2)
        got = notes(a)
        assert got[old["note_id"]]["status"] == "superseded"
        assert got[old["note_id"]]["superseded_by"] == new["note_id"]
        d = decide(a, "Where do data engineers in Madrid or Tokyo meet?")
        assert used(d) == [new["note_id"], short["note_id"], pinned["note_id"]]
        assert "Works as a data engineer in Madrid" in d["directives"]["system_prompt"]
        edited = a.patch(
            f"/v1/users/ana/notes/{new['note_id']}",
            json={"text": "Works as a data engineer in Madrid and Lisbon"},
            headers=AUTH,
        ).json()
        assert edited["version"] == 2 and edited["history"][0]["text"].endswith("in Madrid")
        time.sleep(2.1)
        assert short["note_id"] not in used(decide(a, "Tokyo this week?"))  # expired at once
        # Retention runs on event time: the worker deletes it at a later event.
        wait(lambda: decide(a, "ping") is not None and short["note_id"] not in notes(a))

        with replica(kafka_url, tmp_path / "b") as b:  # a fresh replica: a restart
            wait(lambda: notes(b) == notes(a))
            assert used(decide(b, "Lisbon?")) == [new["note_id"], pinned["note_id"]]

        r = a.patch("/v1/users/ana/profile", json={"personalization": "paused"}, headers=AUTH)
        assert r.json()["personalization"] == "paused"
        d = decide(a, "Lisbon?")
        assert d["explanation"][0]["kind"] == "paused" and d["directives"]["notes"] == []
        a.patch("/v1/users/ana/profile", json={"personalization": "active"}, headers=AUTH)
        assert used(decide(a, "Lisbon?")) == [new["note_id"], pinned["note_id"]]

        assert a.delete(f"/v1/users/ana/notes/{pinned['note_id']}", headers=AUTH).status_code == 204
        assert used(decide(a, "metric units")) == []
        state = a.get("/v1/users/ana/export", headers=AUTH).json()["state"]
        assert set(state["notes"]) == {old["note_id"], new["note_id"]}
        link = a.post("/v1/users/ana/profile-link", headers=AUTH).json()
        assert "/u/" in link["url"]
        assert a.delete("/v1/users/ana", headers=AUTH).status_code == 204
        assert a.get("/v1/users/ana/notes", headers=AUTH).status_code == 404
        assert decide(a, "Lisbon?")["directives"]["notes"] == []
