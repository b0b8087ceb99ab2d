"""Erasure on Kafka, read as raw records of every topic: what a DELETE promises, and when.

The events topic is append-only, so each user's events are sealed with keys of their own
(``streaming.kafka.sealing``) and the scan reads it twice: as raw records, and opened with
every key the keys topic holds at the time of the scan.

- When the delete returns: the events topic holds nothing of the user, raw or opened (the
  worker tombstoned their keys; their sealed records stay until the topic's retention and open
  with no key left in Kafka); the models topic holds nothing of them (the replica republished
  the model without them and deleted every older record), nor does the replica's data folder
  (the export ``attune train`` left there); the changelog's latest record for the user is a
  tombstone, so no reader restores them, and so is the keys topic's for each of their keys.
- Within about ``[retention] erasure_s`` of later writes to those partitions, no topic holds
  any record of them (compaction), tombstones included: neither their id, nor anything they
  wrote, nor their factors, state or keys.
- Every other topic (dead letters, Kafka's own) never holds them.

Every trace is first found before the delete, so the scan can fail. The same id then comes
back as a new user.
"""

from __future__ import annotations

import base64
import contextlib
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

from api.app import create_app
from api.settings import load_settings
from collab import CFModel
from collab.watch import model_from_bytes
from streaming.events import EventError
from streaming.join import decision_log
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.changelog import read_partitions
from streaming.kafka.model_topic import read_models
from streaming.kafka.reader import read_events
from streaming.kafka.sealing import KeyRing, sealed_key_id
from streaming.user_record import decode
from tests.faults.erasable import KEY, ROLE_FEATURE, USER, give_history, user_traces
from tests.faults.traces import find, folder_contents
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
    included; one blob per topic. ``<prefix>.events (opened)`` is the events topic's records
    opened with the keys the keys topic holds now (those that open)."""
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
    ring = KeyRing.loaded(KafkaConfig(bootstrap, prefix))
    opened = []
    for value in out[f"{prefix}.events"][1::2]:
        with contextlib.suppress(EventError):
            opened.append(ring.open(value).to_bytes())
    out[f"{prefix}.events (opened)"] = opened
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


def _records_sealed_with(bootstrap: str, config: KafkaConfig, key_id: str) -> int:
    """Records of the events topic sealed with this key."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(config.events, p) for p in range(config.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        n = 0
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=200).values():
                n += sum(1 for rec in records if sealed_key_id(rec.value) == key_id)
        return n
    finally:
        consumer.close()


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
        users = read_partitions(config, [0])[0].users
        state = decode(users[KEY] or b"")["engine"]
        others = b"\0".join(v or b"" for k, v in users.items() if k != KEY)
        [user_key] = KeyRing.loaded(config).keys_of(KEY)  # one replica made it
        traces = {
            **user_traces(model, state["B"], others),
            "key": [user_key.secret, base64.b64encode(user_key.secret)],
        }
        opened = config.events + " (opened)"

        # The scan finds every trace first, in every topic that should hold it.
        before = find(topic_contents(kafka_bootstrap, config.prefix), traces)
        assert before.keys() == traces.keys(), f"not found: {traces.keys() - before.keys()}"
        assert set(before["id"]) == {opened, config.keys, config.changelog, config.models}
        for text in ("note", "audit", "session"):  # sealed: found only when opened
            assert opened in before[text] and config.events not in before[text], text
        assert before["factors"] == [config.models] and before["state"] == [config.changelog]
        assert before["key"] == [config.keys]
        assert find(folder_contents(data), traces).keys() == {"id"}  # the training export
        sealed = _records_sealed_with(kafka_bootstrap, config, user_key.key_id)
        assert sealed > 0

        assert replica.delete(f"/v1/users/{USER}").status_code == 204
        left = find(topic_contents(kafka_bootstrap, config.prefix), traces)
        # Only superseded records of compacted topics, waiting for compaction.
        assert {w for where in left.values() for w in where} <= {config.changelog, config.keys}
        assert find(folder_contents(data), traces) == {}
        assert KEY in read_partitions(config, [0])[0].users  # its latest record: a tombstone
        assert read_partitions(config, [0])[0].users[KEY] is None
        # The sealed records stay until the events topic's retention, and open with no key.
        assert _records_sealed_with(kafka_bootstrap, config, user_key.key_id) >= sealed
        assert not [r for r in decision_log(read_events(config)) if r["user_id"] == KEY]

        # Later writes to the partitions (another user's traffic, a new user's key) let
        # compaction run: within about erasure_s no topic holds any record of the user.
        def nothing_left() -> bool:
            _traffic(replica, users=1, turns=1)
            replica.post("/v1/decisions", json={"user_id": f"n{time.monotonic_ns()}"})
            return find(topic_contents(kafka_bootstrap, config.prefix), traces) == {}

        _wait(nothing_left, timeout_s=10 * ERASURE_S, step=0.5)

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
