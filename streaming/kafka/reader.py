"""Reading the whole events topic once, from its start to its end (for ``attune train``)."""

from __future__ import annotations

from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition

from streaming.events import Event, EventError
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.sealing import KeyRing


def read_events(config: KafkaConfig) -> Iterator[Event]:
    """Every decodable event of ``<prefix>.events`` up to the end offsets at the start, each
    partition in order (a user's events are in one partition). Undecodable records are
    skipped: the workers dead-letter them; so are the events of erased users, whose keys are
    gone."""
    ring = KeyRing.loaded(config)
    consumer = KafkaConsumer(bootstrap_servers=config.servers, enable_auto_commit=False)
    try:
        parts = [
            TopicPartition(config.events, p)
            for p in sorted(consumer.partitions_for_topic(config.events) or ())
        ]
        if not parts:
            raise ValueError(f"{config.bootstrap}: no events topic {config.events!r}")
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    try:
                        yield ring.open(rec.value)
                    except EventError:
                        continue
    finally:
        consumer.close()
