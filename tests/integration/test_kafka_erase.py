"""Erasure on Kafka, read as raw records of every topic: what a DELETE promises, and when.

- When the delete returns: the models topic holds nothing of the user (the replica republished
  the model without them and deleted every older record), nor does the replica's data folder
  (the export ``attune train`` left there); the changelog's latest record for the user is a
  tombstone, so no reader restores them.
- Within about ``[retention] erasure_s`` of later writes to their changelog partition, the
  changelog holds no record of them at all, the tombstone included (compaction).
- The events topic keeps their raw events, the delete among them, until its retention removes
  them (README, "Running on Kafka"): the test checks that the topic's retention is the policy's
  and that ``attune train`` reads nothing of the user from it.
- Every other topic (dead letters, Kafka's own) never holds them.

Every trace is first found before the delete, so the scan can fail. The same id then comes
back as a new user.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from api.app import create_app
from api.settings import load_settings
from collab import CFModel
from collab.watch import model_from_bytes
from streaming.join import decision_log
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.changelog import read_partitions
from streaming.kafka.model_topic import read_models
from streaming.kafka.reader import read_events
from streaming.user_record import decode
from tests.faults.erasable import KEY, NOTE, ROLE_FEATURE, SESSION, TICKET, USER, give_history
from tests.faults.traces import find, folder_contents, text_traces, vector_traces
from tests.integration.kafka_harness import AUTH, REPO, WorkerProcess, fresh_bus_url, wait_drained
from tests.integration.kafka_harness import KEY as API_KEY

pytestmark = pytest.mark.kafka

ERASURE_S = 3
EVENTS_S = 3600  # the events topic's retention: longer than the test
SETTINGS = (
    "[feedback]\nwait_window_s = 30\n[models]\npoll_interval_s = 0.2\n"
    f"[retention]\nerasure_s = {ERASURE_S}\ndecisions_s = {EVENTS_S}\nfeedback_s = {EVENTS_S}\n"
    + ROLE_FEATURE
)


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    # One partition: every user's traffic reaches the erased user's changelog partition.
    return fresh_bus_url(kafka_bootstrap, "erase", 1)


@pytest.fixture
def worker(kafka_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_url, "erase-w0", tmp_path)
    w.settings.write_text(SETTINGS)
    w.start()
    yield w
    w.stop()


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def topic_contents(bootstrap: str, prefix: str) -> dict[str, bytes]:
    """Every record (key, value, headers) of this deployment's topics and of Kafka's own
    (``__consumer_offsets``, ``__transaction_state``), from the start, aborted transactions
    included; one blob per topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        topics = [t for t in admin.list_topics() if t.startswith((f"{prefix}.", "__"))]
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    out: dict[str, list[bytes]] = {t: [] for t in topics}
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "reading the topics timed out"
            for tp, records in consumer.poll(timeout_ms=200).items():
                for rec in records:
                    out[tp.topic] += [rec.key or b"", rec.value or b""]
                    out[tp.topic] += [value or b"" for _, value in rec.headers or []]
    finally:
        consumer.close()
    return {t: b"\0".join(parts) for t, parts in out.items()}


def _traffic(replica: TestClient, users: int, turns: int) -> None:
    for u in range(users):
        liked = "brief" if u % 2 == 0 else "thorough"
        for t in range(turns):
            r = replica.post("/v1/decisions", json={"user_id": f"u{u}", "message": f"q{t}"})
            assert r.status_code == 200, r.text
            d = r.json()
            up = d["strategy"]["levels"]["length"] == liked
            body = {"user_id": f"u{u}", "decision_id": d["decision_id"], "kind": "thumbs"}
            r = replica.post("/v1/feedback", json={**body, "value": "up" if up else "down"})
            assert r.status_code == 202, r.text


def _train(kafka_url: str, data_dir: Path, replica: TestClient) -> CFModel:
    """``attune train`` run with the replica's data folder (its export lands there); returns
    the model once the replica installed it."""
    train = ["train", "--bus", kafka_url, "--data-dir", str(data_dir), "--no-progress"]
    small = ["--min-users", "10", "--clusters", "2", "--factors", "4", "--iterations", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *train, *small], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    model = model_from_bytes(read_models(KafkaConfig.from_url(kafka_url))["cf"])

    def installed() -> bool:
        m = re.search(r"^attune_model_version (\S+)$", replica.get("/metrics").text, re.M)
        return m is not None and float(m.group(1)) == model.version

    _wait(installed)
    return model


def _retention_ms(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    [configs] = [c for by_name in found.values() for c in by_name.values()]
    return int(configs["retention.ms"]["value"])


def _profile(replica: TestClient, user: str) -> dict:
    r = replica.get(f"/v1/users/{user}/profile")
    assert r.status_code == 200, r.text
    return r.json()


def test_an_erased_user_leaves_every_topic_and_comes_back_fresh(
    kafka_url: str, kafka_bootstrap: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    config = KafkaConfig.from_url(kafka_url)
    toml = tmp_path / "replica.toml"
    toml.write_text(SETTINGS)
    data = tmp_path / "replica"
    settings = dataclasses.replace(
        load_settings(toml, {}),
        api_keys={API_KEY: "acme"},
        data_dir=data,
        warm=False,
        bus=kafka_url,
        metrics_public=True,  # the model version names no tenant
    )
    with TestClient(create_app(settings), headers=AUTH) as replica:
        _traffic(replica, users=12, turns=4)
        give_history(replica)
        wait_drained(config, config.prefix + ".workers", 60)
        model = _train(kafka_url, data, replica)
        [row] = model.rows([KEY])
        assert row >= 0, "the model was trained on the user"
        state = decode(read_partitions(config, [0])[0].users[KEY] or b"")["engine"]
        traces = {
            **text_traces("id", USER),
            **text_traces("note", NOTE),
            **text_traces("audit", TICKET),
            **text_traces("session", SESSION),
            **vector_traces("factors", model.user_factors[row]),
            **vector_traces("state", state["B"]),
        }

        # The scan finds every trace first, in every topic that should hold it.
        before = find(topic_contents(kafka_bootstrap, config.prefix), traces)
        assert before.keys() == traces.keys(), f"not found: {traces.keys() - before.keys()}"
        assert set(before["id"]) == {config.events, config.changelog, config.models}
        assert before["factors"] == [config.models] and before["state"] == [config.changelog]
        assert find(folder_contents(data), traces).keys() == {"id"}  # the training export

        assert replica.delete(f"/v1/users/{USER}").status_code == 204
        topics = topic_contents(kafka_bootstrap, config.prefix)
        assert find({config.models: topics[config.models]}, traces) == {}
        assert find(folder_contents(data), traces) == {}
        assert KEY in read_partitions(config, [0])[0].users  # its latest record: a tombstone
        assert read_partitions(config, [0])[0].users[KEY] is None
        # The events topic keeps the user's events until its retention, unread by training.
        assert config.events in find(topics, traces)["id"]
        assert _retention_ms(kafka_bootstrap, config.events) == EVENTS_S * 1000
        assert not [r for r in decision_log(read_events(config)) if r["user_id"] == KEY]

        # Later writes to the partition (another user's traffic) let compaction run: within
        # about erasure_s the changelog holds no record of the user, the tombstone included.
        def only_events_left() -> bool:
            _traffic(replica, users=1, turns=1)
            left = find(topic_contents(kafka_bootstrap, config.prefix), traces)
            return {w for where in left.values() for w in where} <= {config.events}

        _wait(only_events_left, timeout_s=10 * ERASURE_S, step=0.5)

        # The same id again, while the replica still holds the model that knew them.
        control = "never-seen-0b1d"
        for user in (USER, control):
            r = replica.post("/v1/decisions", json={"user_id": user, "message": "hello"})
            assert r.status_code == 200, r.text
        _wait(
            lambda: all(_profile(replica, u)["evidence"]["decisions"] == 1 for u in (USER, control))
        )
        again, fresh = _profile(replica, USER), _profile(replica, control)
        assert again["pins"] == {} and again["features"] == {} and again["notes"] == []
        for field in ("evidence", "cluster", "preferences"):
            assert again[field] == fresh[field], field
