"""CF models on Kafka: ``attune train --bus kafka://`` publishes to the models topic, a worker
and an API replica pick the version up without a restart, and a worker killed after the
install restores the same version: its final state equals an uninterrupted run's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition

from api.app import create_app
from api.settings import Settings
from bandit import Engine
from collab import CFModel
from collab.watch import model_from_bytes
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.changelog import read_partitions
from streaming.kafka.model_topic import read_models
from streaming.kafka.sealing import KeyRing
from streaming.kafka.worker import apply_in_order
from streaming.models import ModelProcessor
from tests.integration.kafka_harness import (
    AUTH,
    KEY,
    REPO,
    WAIT_WINDOW_S,
    WorkerProcess,
    assert_same_state,
    changelog_state,
    fresh_bus_url,
    wait_drained,
)
from tests.loadgen import synthetic_events

pytestmark = pytest.mark.kafka

USERS = 24


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    return fresh_bus_url(kafka_bootstrap, "models", 1)


@pytest.fixture
def worker(kafka_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_url, "models-w0", tmp_path)
    w.settings.write_text(w.settings.read_text() + "\n[models]\npoll_interval_s = 0.2\n")
    w.start()
    yield w
    w.stop()


class _Source:
    def __init__(self, model: CFModel) -> None:
        self.model = model

    def latest(self) -> CFModel:
        return self.model

    def get(self, version: int) -> CFModel | None:
        return self.model if version == self.model.version else None


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _decide(client: TestClient, user: str, message: str = "hello") -> dict:
    r = client.post("/v1/decisions", json={"user_id": user, "message": message}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def _thumb(client: TestClient, user: str, decision_id: str, up: bool) -> None:
    body = {"user_id": user, "decision_id": decision_id, "kind": "thumbs"}
    r = client.post("/v1/feedback", json={**body, "value": "up" if up else "down"}, headers=AUTH)
    assert r.status_code == 202, r.text


def _traffic(client: TestClient, users: list[str], turns: int) -> None:
    for i, user in enumerate(users):
        liked = "brief" if i % 2 == 0 else "thorough"
        for t in range(turns):
            d = _decide(client, user, f"question {t} from {user}")
            _thumb(client, user, d["decision_id"], d["strategy"]["levels"]["length"] == liked)


def _model_record(config: KafkaConfig) -> dict | None:
    shared = read_partitions(config, [0])[0].shared
    return None if shared is None else json.loads(shared).get("model")


def _events_with_offsets(config: KafkaConfig) -> list[tuple[int, Event]]:
    ring = KeyRing.loaded(config)
    consumer = KafkaConsumer(bootstrap_servers=config.servers, enable_auto_commit=False)
    out: list[tuple[int, Event]] = []
    try:
        tp = TopicPartition(config.events, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            for recs in consumer.poll(timeout_ms=200).values():
                out.extend((rec.offset, ring.open(rec.value)) for rec in recs)
    finally:
        consumer.close()
    return out


def _reference(config: KafkaConfig, model: CFModel, install_offset: int) -> dict:
    """An uninterrupted worker: the same events, the model installed at the same offset."""
    processor = ModelProcessor(
        Engine(random_state=0),
        RewardComposer(),
        wait_window_s=WAIT_WINDOW_S,
        source=_Source(model),
    )
    events = _events_with_offsets(config)
    before = [e for off, e in events if off < install_offset]
    after = [e for off, e in events if off >= install_offset]
    changed, watermark = apply_in_order(processor, before, 0, 0.0)
    changed |= processor.install(model, users="present", offset=install_offset)
    more, _ = apply_in_order(processor, after, 0, watermark)
    users = {k: processor.export_record(k) for k in changed | more}
    return {0: (users, processor.export_shared(0))}


def test_train_publishes_and_worker_and_replica_install_it(
    kafka_url: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    config = KafkaConfig.from_url(kafka_url)
    settings = Settings(
        api_keys={KEY: "acme"},
        data_dir=tmp_path / "replica",
        warm=False,
        poll_interval_s=0.2,
        adapter_template="lora-{k}",
        bus=kafka_url,
        metrics_public=True,  # the model version names no tenant
    )
    users = [f"u{i}" for i in range(USERS)]
    with TestClient(create_app(settings)) as replica:
        _traffic(replica, users, turns=5)
        wait_drained(config, config.prefix + ".workers", 120)
        assert _model_record(config) is None

        train = ["train", "--bus", kafka_url, "--data-dir", str(tmp_path / "train")]
        small = ["--min-users", "10", "--clusters", "2", "--factors", "4", "--iterations", "5"]
        subprocess.run(
            [sys.executable, "-m", "api.cli", *train, *small, "--no-progress"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        model = model_from_bytes(read_models(config)["cf"])
        assert model.n_users == USERS

        # The replica: no restart, the version in /metrics, groups and adapters.
        def replica_version() -> float:
            m = re.search(r"^attune_model_version (\S+)$", replica.get("/metrics").text, re.M)
            return float(m.group(1)) if m else -1.0

        _wait(lambda: replica_version() == model.version)
        profile = replica.get("/v1/users/u3/profile", headers=AUTH).json()
        assert profile["cluster"] == model.cluster_of("acme/u3")
        d = _decide(replica, "fresh1", "Explain recursion")
        cluster = replica.get("/v1/users/fresh1/profile", headers=AUTH).json()["cluster"]
        assert cluster in range(model.n_clusters)
        assert d["directives"]["adapter"] == f"lora-{cluster}"

        # The worker installs it at its next batch and records the version with its state.
        _thumb(replica, "fresh1", d["decision_id"], True)
        _wait(lambda: (_model_record(config) or {}).get("version") == model.version)
        record = _model_record(config)
        assert record is not None

        # Killed after the install; events flow while it is down; the restart must reattach
        # the same version before it replays them.
        worker.kill()
        _traffic(replica, ["fresh2", "u0", "u1"], turns=3)
        worker.start()
        wait_drained(config, config.prefix + ".workers", 120)
    assert _model_record(config) == record
    assert_same_state(changelog_state(config), _reference(config, model, record["offset"]))


def test_training_from_the_topic_drops_what_a_user_did_before_their_delete(
    kafka_url: str,
) -> None:
    from streaming.join import decision_log
    from streaming.kafka.bus import KafkaBus
    from streaming.kafka.reader import read_events

    events = [e for e in synthetic_events(600, n_users=6) if e.kind != "profile"]
    deleted = events[0].user_id
    before = [e for e in events if e.kind == "decision" and e.user_id == deleted]
    assert before
    delete = Event("profile", "p_del", "acme", deleted, events[-1].ts + 1, {"op": "delete"})
    later = replace(before[0], event_id="d_after", ts=events[-1].ts + 2)
    bus = KafkaBus(kafka_url)
    try:
        bus.publish([*events, delete, later])
    finally:
        bus.close()
    rows = decision_log(read_events(KafkaConfig.from_url(kafka_url)))
    mine = [r for r in rows if r["user_id"] == deleted]
    # Only the decision made after the delete is left; other users keep all of theirs.
    assert [r["ts"] for r in mine] == [later.ts]
    n_others = sum(1 for e in events if e.kind == "decision" and e.user_id != deleted)
    assert len(rows) == n_others + 1
