"""Idempotent decisions on Kafka: a retry reaching the replica that decided gets the decision
from its memory; one reaching another replica, once a worker applied the decision, gets it
from the changelog. Either way the workers count one decision."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.integration.kafka_harness import AUTH, KEY, WorkerProcess, fresh_bus_url

pytestmark = pytest.mark.kafka

SAME = ("decision_id", "strategy", "propensity", "seed", "directives", "policy")


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    return fresh_bus_url(kafka_bootstrap, "idem", 2)


@pytest.fixture
def worker(kafka_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_url, "idem-w0", tmp_path)
    w.start()
    yield w
    w.stop()


def _replica(url: str, tmp_path: Path) -> TestClient:
    return TestClient(create_app(Settings(api_keys={KEY: "acme"}, data_dir=tmp_path, bus=url)))


def _profile(client: TestClient, user: str) -> dict | None:
    r = client.get(f"/v1/users/{user}/profile", headers=AUTH)
    return r.json() if r.status_code == 200 else None


def _wait(predicate, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_retry_on_either_replica_gets_the_same_decision(
    kafka_url: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    body = {"user_id": "ana", "message": "How do I rebase?", "request_id": "turn-1"}
    with _replica(kafka_url, tmp_path / "a") as a, _replica(kafka_url, tmp_path / "b") as b:
        first = a.post("/v1/decisions", json=body, headers=AUTH).json()
        assert a.post("/v1/decisions", json=body, headers=AUTH).json() == first

        # b learns the decision from the changelog once the worker applied it
        _wait(lambda: (_profile(b, "ana") or {}).get("evidence", {}).get("decisions") == 1)
        again = b.post("/v1/decisions", json=body, headers=AUTH).json()
        assert {k: again[k] for k in SAME} == {k: first[k] for k in SAME}
        assert again["explanation"]  # explained again by b's model

        r = b.post(
            "/v1/feedback",
            json={"user_id": "ana", "decision_id": again["decision_id"], "kind": "thumbs",
                  "value": "up", "event_id": "fb-1"},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 202, r.text
        _wait(lambda: (_profile(a, "ana") or {})["evidence"]["feedback_events"] == 1)
        evidence = (_profile(a, "ana") or {})["evidence"]
        assert evidence["decisions"] == 1  # one decision, though three requests carried it
