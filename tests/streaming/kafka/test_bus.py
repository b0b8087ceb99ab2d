"""KafkaConfig: URL parsing and validation (no broker needed)."""

from __future__ import annotations

import pytest

from streaming.kafka.bus import KafkaConfig, dead_letter
from streaming.kafka.changelog import decode_partition, encode_partition


def test_url_defaults_and_topic_names() -> None:
    cfg = KafkaConfig.from_url("kafka://127.0.0.1:9092")
    assert (cfg.prefix, cfg.partitions, cfg.replication) == ("attune", 8, 1)
    assert [cfg.events, cfg.changelog, cfg.models, cfg.deadletters] == [
        "attune.events",
        "attune.changelog",
        "attune.models",
        "attune.deadletters",
    ]


def test_url_parameters() -> None:
    cfg = KafkaConfig.from_url("kafka://a:1,b:2?prefix=t-1&partitions=3&replication=2")
    assert cfg.servers == ["a:1", "b:2"]
    assert (cfg.prefix, cfg.partitions, cfg.replication) == ("t-1", 3, 2)


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("sqlite:///x.db", "kafka:// URL"),
        ("kafka://host", "bootstrap"),
        ("kafka://h:1?prefix=a/b", "prefix"),
        ("kafka://h:1?partitions=0", "partitions"),
        ("kafka://h:1?partitions=x", "bad kafka URL"),
        ("kafka://h:1?replicas=2", "unknown kafka URL parameter"),
    ],
)
def test_bad_urls(url: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        KafkaConfig.from_url(url)


def test_partition_record_round_trip_and_version() -> None:
    data = encode_partition(b"\x00\x01shared", 12.5)
    assert decode_partition(data) == (b"\x00\x01shared", 12.5)
    with pytest.raises(ValueError, match="schema version 2"):
        decode_partition(data.replace(b'"version": 1', b'"version": 2'))


def test_dead_letter_keeps_undecodable_bytes_as_hex() -> None:
    import json

    doc = json.loads(
        dead_letter(b"\xff\xfe", "not json", topic="t", partition=1, offset=7, key=b"a/b")
    )
    assert doc == {
        "reason": "not json",
        "topic": "t",
        "partition": 1,
        "offset": 7,
        "key": "a/b",
        "value": "fffe",
        "encoding": "hex",
    }
