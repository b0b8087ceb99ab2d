"""Catalogs per tenant on Kafka: a tenant with a catalog of its own has topics of its own, a
worker started with ``--tenant`` serves them, and an API replica routes each tenant to its
lane; the other tenant's lane, topics and worker are untouched by it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from streaming.kafka.bus import KafkaConfig
from tests.api.test_train_catalog import acme_catalog
from tests.integration.kafka_harness import (
    KEY,
    WAIT_WINDOW_S,
    WorkerProcess,
    end_offsets,
    fresh_bus_url,
)

pytestmark = pytest.mark.kafka

BETA_KEY = "beta-test-key-0123456789abcdef"
ACME = {"Authorization": f"Bearer {KEY}"}
BETA = {"Authorization": f"Bearer {BETA_KEY}"}
PROFILE = "/v1/users/ana/profile"


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    return fresh_bus_url(kafka_bootstrap, "lanes", 1)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return acme_catalog(tmp_path / "beta-catalog.toml")


@pytest.fixture
def workers(kafka_url: str, catalog: Path, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """One worker for the server's catalog, one started with ``--tenant beta``."""
    (tmp_path / "w-default").mkdir()
    (tmp_path / "w-beta").mkdir()
    default = WorkerProcess(kafka_url, "lanes-w0", tmp_path / "w-default")
    beta = WorkerProcess(kafka_url, "lanes-w1", tmp_path / "w-beta", "--tenant", "beta")
    beta.settings.write_text(
        f'[feedback]\nwait_window_s = {WAIT_WINDOW_S}\n\n[tenants.beta]\ncatalog = "{catalog}"\n'
    )
    for w in (default, beta):
        w.start()
    yield [default, beta]
    for w in (default, beta):
        w.stop()


def _wait(predicate: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_tenant_catalog_has_its_own_topics_and_worker(
    kafka_url: str, catalog: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    settings = Settings(
        api_keys={KEY: "acme", BETA_KEY: "beta"},
        data_dir=tmp_path / "replica",
        warm=False,
        bus=kafka_url,
        tenant_catalogs={"beta": catalog},
    )
    with TestClient(create_app(settings)) as replica:
        counts = {"acme": 0, "beta": 0}
        for tenant, headers, version in (
            ("acme", ACME, "attune-default.v2"),
            ("beta", BETA, "acme-support.v1"),
        ):
            for turn in range(3):
                r = replica.post("/v1/decisions", json={"user_id": "ana"}, headers=headers)
                assert r.status_code == 200, r.text
                d = r.json()
                assert d["policy"]["version"] == version
                # The lane's worker applied it once the user's record comes back.
                _wait(lambda h=headers: replica.get(PROFILE, headers=h).status_code == 200)
                body = {"user_id": "ana", "decision_id": d["decision_id"], "kind": "thumbs",
                        "value": "up", "event_id": f"{tenant}-{turn}"}  # fmt: skip
                r = replica.post("/v1/feedback", json=body, headers=headers)
                assert r.status_code == 202, r.text
                counts[tenant] += 1

        def evidence(headers: dict[str, str]) -> int:
            r = replica.get(PROFILE, headers=headers)
            return int(r.json()["evidence"]["feedback_events"])

        _wait(lambda: evidence(ACME) == counts["acme"] and evidence(BETA) == counts["beta"])
        beta_tone = replica.get(PROFILE, headers=BETA).json()["preferences"]
        assert beta_tone["tone"]["preferred"] in {"friendly", "plain", "blunt"}

    # Each lane's events went to its own topics: 3 decisions and 3 feedback events each.
    base = KafkaConfig.from_url(kafka_url)
    beta_lane = KafkaConfig.from_url(settings.for_tenant("beta").bus)
    assert beta_lane.prefix == f"{base.prefix}-acme-support"
    assert sum(end_offsets(base).values()) == 6
    assert sum(end_offsets(beta_lane).values()) == 6
