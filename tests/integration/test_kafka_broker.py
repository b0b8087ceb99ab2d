"""Smoke test of the real broker that scripts/kafka.sh runs.

Checks what the rest of the project relies on: topics created through the
admin API, acks=all produce, consumer groups with committed offsets, per-key
ordering, broker defaults, and that records and offsets survive a restart.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.serializer import DefaultSerializer  # utf-8 str <-> bytes (kafka-python 3.x)

from tests.kafka_broker import kafka_bootstrap, restart_broker, session_state_dir

__all__ = ["kafka_bootstrap"]  # imported as a fixture, not called

pytestmark = pytest.mark.kafka

N_MESSAGES = 100
N_PARTITIONS = 2
KEYS = [f"user-{i}" for i in range(7)]
POLL_DEADLINE_S = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class Produced:
    topic: str
    # key -> values in the order they were sent
    expected: dict[str, list[str]]


def _retry(call: Callable[[], T], timeout_s: float = 30.0) -> T:
    """Retry a call that can fail briefly while a (re)started broker loads its
    coordinators (e.g. COORDINATOR_LOAD_IN_PROGRESS right after a restart)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _consume_all(bootstrap: str, topic: str, group_id: str, expected_count: int) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        key_deserializer=DefaultSerializer(),
        value_deserializer=DefaultSerializer(),
    )
    records: list = []
    try:
        deadline = time.monotonic() + POLL_DEADLINE_S
        while len(records) < expected_count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        # One more short poll: a duplicate or stray record would show up here.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        consumer.commit()
    finally:
        consumer.close()
    return records


def _assert_same_records(records: list, expected: dict[str, list[str]]) -> None:
    assert len(records) == N_MESSAGES
    # poll() returns each partition's records in offset order, and a key always
    # lands on one partition, so grouping keeps per-key order.
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_key[record.key].append(record.value)
    assert dict(by_key) == expected


def _committed_total(bootstrap: str, group_id: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = _retry(lambda: admin.list_group_offsets({group_id: None}))
    finally:
        admin.close()
    return sum(meta.offset for meta in offsets[group_id].values())


@pytest.fixture(scope="module")
def produced(kafka_bootstrap: str) -> Produced:
    topic = f"smoke-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            {topic: {"num_partitions": N_PARTITIONS, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == N_PARTITIONS
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        key_serializer=DefaultSerializer(),
        value_serializer=DefaultSerializer(),
    )
    expected: dict[str, list[str]] = defaultdict(list)
    futures = []
    try:
        for i in range(N_MESSAGES):
            key = KEYS[i % len(KEYS)]
            value = f"{key}#{len(expected[key])}"
            expected[key].append(value)
            futures.append((key, producer.send(topic, key=key, value=value)))
        producer.flush(timeout=30)
        partition_of: dict[str, set[int]] = defaultdict(set)
        for key, future in futures:
            partition_of[key].add(future.get(timeout=30).partition)
    finally:
        producer.close()
    assert all(len(parts) == 1 for parts in partition_of.values())
    # Both partitions are really used, so ordering is checked across partitions.
    assert set().union(*partition_of.values()) == set(range(N_PARTITIONS))
    return Produced(topic=topic, expected=dict(expected))


def test_produce_and_consume_with_group(kafka_bootstrap: str, produced: Produced) -> None:
    group_id = f"smoke-{uuid.uuid4().hex[:8]}"
    records = _consume_all(kafka_bootstrap, produced.topic, group_id, N_MESSAGES)
    _assert_same_records(records, produced.expected)
    assert _committed_total(kafka_bootstrap, group_id) == N_MESSAGES


def test_auto_created_topic_uses_broker_defaults(kafka_bootstrap: str) -> None:
    topic = f"auto-{uuid.uuid4().hex[:12]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        producer.send(topic, b"hello").get(timeout=30)
        partitions = producer.partitions_for(topic)
    finally:
        producer.close()
    assert len(partitions) == 4  # num.partitions in the generated server.properties


def test_data_survives_restart(
    kafka_bootstrap: str, produced: Produced, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state_dir = session_state_dir(tmp_path_factory)
    if state_dir is None:
        pytest.skip("broker is external (ATTUNE_KAFKA_BOOTSTRAP); not ours to restart")

    committed_group = f"smoke-{uuid.uuid4().hex[:8]}"
    _consume_all(kafka_bootstrap, produced.topic, committed_group, N_MESSAGES)

    assert restart_broker(state_dir) == kafka_bootstrap

    # Committed offsets live in __consumer_offsets: they must come back too.
    assert _committed_total(kafka_bootstrap, committed_group) == N_MESSAGES
    fresh_group = f"smoke-{uuid.uuid4().hex[:8]}"
    records = _consume_all(kafka_bootstrap, produced.topic, fresh_group, N_MESSAGES)
    _assert_same_records(records, produced.expected)
