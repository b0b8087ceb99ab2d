"""End to end in Kafka mode: two API replicas, two workers in one group, the HTTP API.

Every accepted feedback event must show up exactly once in ``evidence.feedback_events`` (also
when a client resends it, and when it reaches a replica that did not make the decision).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka.partitioner.default import murmur2

from api.app import create_app
from api.settings import Settings
from tests.integration.kafka_harness import AUTH, KEY, WorkerProcess, fresh_bus_url

pytestmark = pytest.mark.kafka


PARTITIONS = 4


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    return fresh_bus_url(kafka_bootstrap, "e2e", PARTITIONS)


def _one_user_per_partition(partitions: int) -> list[str]:
    """Warm-up user ids whose event keys (``acme/<user>``) land in every partition, by the
    producer's own partitioner (murmur2, as the Java client)."""
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < partitions:
        user = f"warmup-{i}"
        chosen.setdefault((murmur2(f"acme/{user}".encode()) & 0x7FFFFFFF) % partitions, user)
        i += 1
    return list(chosen.values())


def _replica(url: str, tmp_path: Path) -> TestClient:
    settings = Settings(api_keys={KEY: "acme"}, data_dir=tmp_path, warm=False, bus=url)
    return TestClient(create_app(settings))


@pytest.fixture
def workers(kafka_url: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(kafka_url, f"e2e-w{i}", tmp_path) for i in range(2)]
    for w in procs:
        w.start()
    yield procs
    for w in procs:
        w.stop()


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_feedback_counted_once_with_two_workers_and_two_replicas(
    kafka_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    rng = random.Random(3)
    users = [f"user{i}" for i in range(12)]
    expected = dict.fromkeys(users, 0)
    with _replica(kafka_url, tmp_path / "a") as a, _replica(kafka_url, tmp_path / "b") as b:
        # Workers are up once a decision made on a shows in b's view of the changelog, for a
        # user in *every* partition: one flowing partition does not prove that the worker
        # owning the others has started, and b waits only JOIN_WAIT_S for a decision.
        for warm in _one_user_per_partition(PARTITIONS):
            a.post("/v1/decisions", json={"user_id": warm}, headers=AUTH)
            _wait(lambda w=warm: b.get(f"/v1/users/{w}/profile", headers=AUTH).status_code == 200)
        for turn in range(60):
            user = users[turn % len(users)]
            r = a.post(
                "/v1/decisions", json={"user_id": user, "message": "How do I sort?"}, headers=AUTH
            )
            assert r.status_code == 200, r.text
            decision_id = r.json()["decision_id"]
            if rng.random() < 0.75:
                replica = a if rng.random() < 0.5 else b  # b learns the decision from Kafka
                body = {
                    "user_id": user,
                    "decision_id": decision_id,
                    "kind": "thumbs",
                    "value": "up" if rng.random() < 0.5 else "down",
                    "event_id": f"fb-{turn}",
                }
                r = replica.post("/v1/feedback", json=body, headers=AUTH)
                assert r.status_code == 202, r.text
                expected[user] += 1
                if turn % 5 == 0:  # a client retry of the same event
                    assert b.post("/v1/feedback", json=body, headers=AUTH).status_code == 202

        def counted(client: TestClient) -> dict[str, int]:
            out = {}
            for u in users:
                r = client.get(f"/v1/users/{u}/profile", headers=AUTH)
                out[u] = r.json()["evidence"]["feedback_events"] if r.status_code == 200 else -1
            return out

        _wait(lambda: counted(a) == expected and counted(b) == expected)
        assert sum(expected.values()) > 30
        r = a.get(f"/v1/users/{users[0]}/profile", headers=AUTH).json()
        assert r["evidence"]["decisions"] == 5
        # A delete reaches a worker, which publishes a tombstone; both replicas forget.
        assert a.delete(f"/v1/users/{users[1]}", headers=AUTH).status_code == 204
        _wait(lambda: b.get(f"/v1/users/{users[1]}/profile", headers=AUTH).status_code == 404)
        assert a.get(f"/v1/users/{users[1]}/profile", headers=AUTH).status_code == 404
