"""The changelog against the real broker: transactional visibility, compaction keys, views."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from streaming.kafka.bus import KafkaBus, KafkaConfig, make_producer
from streaming.kafka.changelog import (
    ChangelogMaterializer,
    encode_partition,
    partition_key,
    read_partitions,
)
from streaming.kafka.model_topic import publish_model, read_models

pytestmark = pytest.mark.kafka


@pytest.fixture
def config(kafka_bootstrap: str) -> KafkaConfig:
    cfg = KafkaConfig(kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}", partitions=2)
    KafkaBus(cfg).close()  # creates the topics
    return cfg


class _Sink:
    def __init__(self) -> None:
        self.users: dict[str, bytes | None] = {}
        self.shared: dict[int, bytes] = {}

    def import_user(self, key: str, data: bytes | None) -> None:
        self.users[key] = data

    def import_shared(self, partition: int, data: bytes) -> None:
        self.shared[partition] = data


def _transactions(cfg: KafkaConfig) -> Any:
    producer = make_producer(cfg, transactional_id=f"{cfg.prefix}.test")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(cfg.changelog, key=b"t/u1", value=b"one", partition=0)
    producer.send(
        cfg.changelog, key=partition_key(0), value=encode_partition(b"W0", 5.0), partition=0
    )
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(cfg.changelog, key=b"t/u1", value=b"aborted", partition=0)
    producer.send(cfg.changelog, key=b"t/u2", value=b"aborted", partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(cfg.changelog, key=b"t/u3", value=b"three", partition=0)
    producer.send(cfg.changelog, key=b"t/u1", value=None, partition=0)
    producer.send(cfg.changelog, key=b"t/u4", value=b"four", partition=1)
    producer.commit_transaction()
    return producer


def test_restore_sees_committed_transactions_only(config: KafkaConfig) -> None:
    _transactions(config).close()
    snaps = read_partitions(config, [0, 1])
    assert snaps[0].users == {"t/u1": None, "t/u3": b"three"}
    assert (snaps[0].shared, snaps[0].watermark) == (b"W0", 5.0)
    assert snaps[1].users == {"t/u4": b"four"} and snaps[1].shared is None


def test_restore_of_empty_partition(config: KafkaConfig) -> None:
    snaps = read_partitions(config, [1])
    assert snaps[1].users == {} and snaps[1].end_offset == 0


def test_materializer_follows_new_records(config: KafkaConfig) -> None:
    producer = _transactions(config)
    sink = _Sink()
    view = ChangelogMaterializer(config, sink).start()
    try:
        assert view.wait_caught_up(30)
        assert sink.users == {"t/u1": None, "t/u3": b"three", "t/u4": b"four"}
        assert sink.shared == {0: b"W0"}
        producer.begin_transaction()
        producer.send(config.changelog, key=b"t/u5", value=b"five", partition=1)
        producer.commit_transaction()
        deadline = time.monotonic() + 20
        while "t/u5" not in sink.users and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.users["t/u5"] == b"five"
    finally:
        view.close()
        producer.close()


def test_models_topic_keeps_the_newest_model_per_name(config: KafkaConfig) -> None:
    big = bytes(range(256)) * 8192  # 2 MB: above Kafka's default 1 MB message limit
    publish_model(config, "cf", b"old")
    publish_model(config, "cf", big)
    publish_model(config, "other", b"x")
    assert read_models(config) == {"cf": big, "other": b"x"}


def test_a_republish_that_drops_older_records_leaves_only_itself(config: KafkaConfig) -> None:
    def starts() -> int:
        consumer = KafkaConsumer(bootstrap_servers=config.servers)
        try:
            tp = TopicPartition(config.models, 0)
            return int(consumer.beginning_offsets([tp])[tp])
        finally:
            consumer.close()

    publish_model(config, "cf", b"holds an erased user", chunk_bytes=8)  # 3 chunks
    publish_model(config, "cf", b"scrubbed", drop_older=True)
    assert starts() == 4  # 3 chunks and a manifest gone: the republish starts the topic
    assert read_models(config) == {"cf": b"scrubbed"}
    # Another name's records are never dropped with them.
    publish_model(config, "other", b"x")
    publish_model(config, "cf", b"scrubbed again", drop_older=True)
    assert starts() == 4
    assert read_models(config) == {"cf": b"scrubbed again", "other": b"x"}


def test_a_model_larger_than_a_record_travels_in_chunks(config: KafkaConfig) -> None:
    rng = np.random.default_rng(0)
    first = rng.bytes(2_000_000)
    second = rng.bytes(700_000)
    publish_model(config, "cf", first, chunk_bytes=256 * 1024)  # 8 chunks
    assert read_models(config) == {"cf": first}
    publish_model(config, "cf", second, chunk_bytes=256 * 1024)  # 3 chunks, fewer than before
    assert read_models(config) == {"cf": second}
    # A torn publish (a chunk overwritten, then a manifest its chunks do not match) is skipped:
    # readers keep the last whole model instead of half-reading a new one.
    producer = make_producer(config)
    producer.send(config.models, key=b"cf/0", value=b"torn")
    producer.send(config.models, key=b"cf", value=b'{"chunks": 3, "size": 700000, "sha256": "0"}')
    producer.flush()
    producer.close()
    assert read_models(config) == {"cf": second}
