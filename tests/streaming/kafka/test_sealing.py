"""Sealed events without a broker: the format, the key ring's rules, and the partition."""

from __future__ import annotations

import time

import pytest
from kafka.partitioner import DefaultPartitioner

from streaming.events import Event, EventError
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.sealing import KeyRing, UserKey, seal, sealed_key_id, unseal, user_partition

CONFIG = KafkaConfig("127.0.0.1:9092", prefix="t", partitions=8)
NOTE = {"op": "note", "text": "I teach statistics"}


def _event(user: str = "ana", event_id: str = "p1") -> Event:
    return Event("profile", event_id, "acme", user, 1.0, NOTE)


class _Cluster:
    """The metadata kafka-python's partitioner reads: one topic of ``CONFIG.partitions``."""

    def topics(self) -> set[str]:
        return {"t.events"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(CONFIG.partitions))

    available_partitions_for_topic = partitions_for_topic


def test_a_user_keeps_the_partition_the_default_partitioner_gave_their_key() -> None:
    partitioner, cluster = DefaultPartitioner(), _Cluster()
    got = [user_partition(f"acme/user-{i}", CONFIG.partitions) for i in range(200)]
    want = [
        partitioner.partition("t.events", None, f"acme/user-{i}".encode(), None, None, cluster)
        for i in range(200)
    ]
    assert got == want and len(set(got)) == CONFIG.partitions


def test_a_sealed_event_names_nobody_and_opens_only_with_its_key() -> None:
    ring = KeyRing(CONFIG)
    key = ring.make("acme/ana")
    raw = seal(key, _event().to_bytes())
    assert b"ana" not in raw and b"statistics" not in raw
    assert sealed_key_id(raw) == key.key_id
    assert ring.open(raw) == _event()
    other = UserKey(key.key_id, UserKey.new("acme/ana", 8).secret, "acme/ana", 0, 0)
    with pytest.raises(EventError, match="does not open"):
        unseal(other, raw)
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(EventError, match="does not open"):
        ring.open(tampered)
    with pytest.raises(EventError, match="truncated"):
        sealed_key_id(raw[:20])


def test_plain_json_events_still_open() -> None:
    assert KeyRing(CONFIG).open(_event().to_bytes()) == _event()


def test_an_event_whose_key_is_gone_or_belongs_to_another_user_does_not_open() -> None:
    ring = KeyRing(CONFIG)
    ana, bo = ring.make("acme/ana"), ring.make("acme/bo")
    with pytest.raises(EventError, match="another user"):
        ring.open(seal(bo, _event("ana").to_bytes()))
    raw = seal(ana, _event("ana").to_bytes())
    ring.drop([ana.key_id])
    with pytest.raises(EventError, match=f"no key {ana.key_id}"):
        ring.open(raw)


def test_a_key_record_round_trips_and_carries_its_partition() -> None:
    key = UserKey.new("acme/ana", CONFIG.partitions)
    again = UserKey.from_record(key.key_id, key.record(), key.partition)
    assert again == key
    assert key.partition == user_partition("acme/ana", CONFIG.partitions)


def test_a_user_erased_here_gets_a_key_made_after_the_delete_even_in_its_millisecond() -> None:
    ring = KeyRing(CONFIG)
    old = ring.make("acme/ana")
    deleted_ms = int(time.time() * 1000) + 60_000  # a delete "later" than now: same-ms worst case
    ring.forget("acme/ana", deleted_ms)
    assert ring.current("acme/ana") is None and ring.get(old.key_id) is None
    new = ring.make("acme/ana")
    assert new.created_ms == deleted_ms + 1 and new.key_id != old.key_id
    assert ring.make("acme/ana").created_ms < deleted_ms  # only the first key after the delete


def test_the_newest_key_of_a_user_is_used_and_dropping_it_falls_back() -> None:
    ring = KeyRing(CONFIG)
    first, second = ring.make("acme/ana"), ring.make("acme/ana")
    assert ring.current("acme/ana") == second
    assert ring.keys_of("acme/ana") == [first, second]
    ring.drop([second.key_id])
    assert ring.current("acme/ana") == first and len(ring) == 1
