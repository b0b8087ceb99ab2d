"""The worker in-process against the real broker: dead letters, rebalance hand-over."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from kafka import KafkaConsumer, TopicPartition

from streaming.events import Event
from streaming.kafka import worker as worker_module
from streaming.kafka.bus import KafkaBus, KafkaConfig, ensure_topics, make_producer
from streaming.kafka.sealing import UserKey, seal
from streaming.kafka.worker import KafkaWorker
from streaming.user_record import decode
from tests.integration.kafka_harness import (
    assert_same_state,
    changelog_state,
    make_processor,
    reference_state,
    wait_drained,
)
from tests.loadgen import synthetic_events

pytestmark = pytest.mark.kafka


@pytest.fixture
def config(kafka_bootstrap: str) -> KafkaConfig:
    return KafkaConfig(kafka_bootstrap, prefix=f"w{uuid.uuid4().hex[:10]}", partitions=2)


class _Running:
    """A KafkaWorker on a thread."""

    def __init__(self, config: KafkaConfig, worker_id: str) -> None:
        self.worker = KafkaWorker(
            make_processor,
            config,
            worker_id=worker_id,
            static_membership=False,
            session_timeout_ms=6000,
            max_batch=300,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, kwargs={"stop": self.stop})
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture
def running() -> Iterator[list[_Running]]:
    started: list[_Running] = []
    yield started
    for r in started:
        r.close()


def _dead_letters(config: KafkaConfig, n: int, timeout_s: float = 30) -> list[dict]:
    consumer = KafkaConsumer(bootstrap_servers=config.servers, auto_offset_reset="earliest")
    tp = TopicPartition(config.deadletters, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(json.loads(r.value) for r in recs)
    consumer.close()
    return out


def test_malformed_events_go_to_dead_letters_and_the_stream_goes_on(
    config: KafkaConfig, running: list[_Running]
) -> None:
    bus = KafkaBus(config)
    good = list(synthetic_events(200, n_users=5, random_state=1))
    bus.publish(good[:100])
    bus.publish_raw(b"acme/u1", b"{not json")
    bus.publish_raw(
        b"acme/u1",
        Event("profile", "v2", "acme", "u1", 1.0, {"op": "note"})
        .to_bytes()
        .replace(b'"version":1', b'"version":2'),
    )
    bus.publish_raw(b"acme/u1", b'{"kind":"feedback","event_id":"x","tenant":"acme"}')
    bus.publish(
        [
            Event(
                "feedback",
                "orphan",
                "acme",
                "u1",
                2e9,
                {"decision_id": "nope", "kind": "thumbs", "value": "up"},
            )
        ]
    )
    bus.publish(good[100:])
    bus.close()
    running.append(_Running(config, "dl0"))
    wait_drained(config, f"{config.prefix}.workers", timeout_s=60)
    letters = _dead_letters(config, 4)
    reasons = sorted(d["reason"] for d in letters)
    assert len(letters) == 4, reasons
    assert any("not valid JSON" in r for r in reasons)
    assert any("version 2 is not supported" in r for r in reasons)
    assert any("lacks field 'user_id'" in r for r in reasons)
    assert any("unknown decision 'nope'" in r for r in reasons)
    # Everything valid before and after the bad events was applied exactly as in a clean run.
    running[0].close()
    assert_same_state(changelog_state(config), reference_state(config))


def test_partitions_moving_to_a_new_worker_continue_exactly(
    config: KafkaConfig, running: list[_Running]
) -> None:
    bus = KafkaBus(config)
    events = list(synthetic_events(3000, n_users=80, random_state=2))
    bus.publish(events[:1500])
    running.append(_Running(config, "r0"))
    wait_drained(config, f"{config.prefix}.workers", timeout_s=60)
    running.append(_Running(config, "r1"))  # takes over a partition: restores it
    deadline = time.monotonic() + 30
    while running[1].worker.stats.restores == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running[1].worker.stats.restores >= 1
    bus.publish(events[1500:])
    bus.close()
    wait_drained(config, f"{config.prefix}.workers", timeout_s=60)
    for r in running:
        r.close()
    assert all(r.worker.stats.events > 0 for r in running)
    assert_same_state(changelog_state(config), reference_state(config))


def test_an_event_that_arrives_before_its_key_waits_for_it(
    config: KafkaConfig, running: list[_Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's record and its user's events go to different topics, so an event can arrive
    first: the worker holds the partition until its key comes, and dead-letters (still sealed)
    only the events of a key that never comes."""
    monkeypatch.setattr(worker_module, "KEY_WAIT_S", 4.0)
    ensure_topics(config)
    late, never = (UserKey.new(f"acme/{u}", config.partitions) for u in ("late", "never"))
    base = list(synthetic_events(40, n_users=1, random_state=3))
    producer = make_producer(config)
    for key in (never, late):
        for e in base:
            e = replace(e, user_id=key.user.split("/")[1])  # event ids are per user
            producer.send(config.events, value=seal(key, e.to_bytes()), partition=key.partition)
    producer.flush()
    running.append(_Running(config, "k0"))
    time.sleep(1.5)  # the worker has the events, not the late key
    producer.send(
        config.keys, key=late.key_id.encode(), value=late.record(), partition=late.partition
    )
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 60
    while running[0].worker.stats.events < 2 * len(base):
        assert time.monotonic() < deadline, "the worker did not get through the events"
        time.sleep(0.2)
    running[0].close()
    users = {k: v for users, _ in changelog_state(config).values() for k, v in users.items()}
    assert decode(users["acme/late"] or b"")["counters"]["decisions"] > 0
    assert "acme/never" not in users
    letters = _dead_letters(config, len(base))
    assert len(letters) == len(base)
    assert all(f"no key {never.key_id}" in d["reason"] for d in letters)
    assert not any("never" in (d["value"] or "") for d in letters)  # hex of sealed bytes
