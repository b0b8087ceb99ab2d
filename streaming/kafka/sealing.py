"""Sealed events: each user's events on the Kafka events topic are encrypted with a key of
their own, and erasing the user deletes the key (crypto-shredding).

The events topic is append-only: a record stays until the topic's retention removes it. To let
an erasure take effect at once, a record of the events topic names nobody and holds nothing
readable: its key is empty, its partition is the user's (where the default partitioner put
``tenant/user``, so a user's events stay in order in one partition, as before), and its value
is ``MAGIC``, the key's id, a nonce and the event's JSON under AES-256-GCM (the id is the
associated data). The keys are the records of ``<prefix>.keys``, compacted and co-partitioned
with the events: record key the key id, value ``{"user", "key", "created_ms"}``.

Whoever publishes a user's first event (an API replica, a tool) makes a key and sends it before
the event; a replica keeps the keys it read at start and the ones it made, and uses the newest
of the user's. Two replicas may each make one for the same user; every key of a user opens
that user's events. A worker that applies a delete writes a tombstone for each key of the user
made before the delete (by the records' clocks) in the transaction that erases the user's
state; compaction then removes the keys within about ``[retention] erasure_s``, and from then
on nothing in Kafka can read the user's events, though the records stay until their
retention. A record that is not sealed (a JSON event from before sealing, or one a tool
injected with ``KafkaBus.publish_raw``) is read as plain JSON.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from streaming.events import Event, EventError

if TYPE_CHECKING:
    from streaming.kafka.bus import KafkaConfig

log = logging.getLogger(__name__)

MAGIC = b"\x00as1"  # a JSON event starts with "{"
KEY_ID_BYTES = 16
NONCE_BYTES = 12
HEADER = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES
ERASED_KEPT = 10_000  # a user who comes back later than that many deletes is past the millisecond


def user_partition(user: str, partitions: int) -> int:
    """The partition of a ``tenant/user`` key: the one kafka-python's default partitioner
    gives the key as a record key.

    >>> user_partition("acme/ana", 8) == user_partition("acme/ana", 8) < 8
    True
    """
    return (murmur2(user.encode("utf-8")) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class UserKey:
    """One key of one user: its id (hex), the AES-256 secret, the user's ``tenant/user`` key,
    when it was made (wall clock, ms) and the partition of its record."""

    key_id: str
    secret: bytes
    user: str
    created_ms: int
    partition: int

    @classmethod
    def new(cls, user: str, partitions: int, not_before_ms: int = 0) -> UserKey:
        return cls(
            os.urandom(KEY_ID_BYTES).hex(),
            AESGCM.generate_key(bit_length=256),
            user,
            max(int(time.time() * 1000), not_before_ms),
            user_partition(user, partitions),
        )

    def record(self) -> bytes:
        """The value of its record on the keys topic."""
        secret = base64.b64encode(self.secret).decode("ascii")
        return orjson.dumps({"user": self.user, "key": secret, "created_ms": self.created_ms})

    @classmethod
    def from_record(cls, key_id: str, value: bytes, partition: int) -> UserKey:
        data = orjson.loads(value)
        return cls(
            key_id, base64.b64decode(data["key"]), data["user"], int(data["created_ms"]), partition
        )


@functools.lru_cache(maxsize=4096)
def _cipher(secret: bytes) -> AESGCM:
    """The cipher of a key, kept for the users seen lately (making one costs about as much as
    opening an event)."""
    return AESGCM(secret)


def seal(key: UserKey, plaintext: bytes) -> bytes:
    """``plaintext`` as a sealed record value.

    >>> k = UserKey.new("acme/ana", 4)
    >>> raw = seal(k, b'{"a":1}')
    >>> b"ana" in raw, sealed_key_id(raw) == k.key_id, unseal(k, raw)
    (False, True, b'{"a":1}')
    """
    key_id = bytes.fromhex(key.key_id)
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + key_id + nonce + _cipher(key.secret).encrypt(nonce, plaintext, key_id)


def sealed_key_id(raw: bytes) -> str | None:
    """The id of the key that sealed ``raw``; None when ``raw`` is not sealed."""
    if not raw.startswith(MAGIC):
        return None
    if len(raw) < HEADER:
        raise EventError("a sealed event is truncated")
    return raw[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()


def unseal(key: UserKey, raw: bytes) -> bytes:
    """The plaintext of a sealed value; EventError if the key does not open it."""
    key_id = raw[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
    try:
        nonce = raw[len(MAGIC) + KEY_ID_BYTES : HEADER]
        return _cipher(key.secret).decrypt(nonce, raw[HEADER:], key_id)
    except InvalidTag:
        raise EventError(f"a sealed event does not open with key {key.key_id}") from None


class KeyRing:
    """The users' keys, read from the keys topic and added to by whoever makes them.

    ``catch_up`` reads the topic up to its current end (committed records: a worker's
    tombstones count once its transaction commits). Thread-safe.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._by_id: dict[str, UserKey] = {}
        self._by_user: dict[str, list[UserKey]] = {}  # oldest first
        self._erased_ms: OrderedDict[str, int] = OrderedDict()  # the latest deletes made here
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._parts: list[TopicPartition] = []

    @classmethod
    def loaded(cls, config: KafkaConfig, timeout_s: float = 30.0) -> KeyRing:
        """A ring of the keys on the topic now, its reader closed (for a one-off read)."""
        ring = cls(config)
        try:
            ring.catch_up(timeout_s)
        finally:
            ring.close()
        return ring

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, key_id: str) -> UserKey | None:
        return self._by_id.get(key_id)

    def keys_of(self, user: str) -> list[UserKey]:
        with self._lock:
            return list(self._by_user.get(user, ()))

    def current(self, user: str) -> UserKey | None:
        """The newest key of the user held here."""
        keys = self._by_user.get(user)
        return keys[-1] if keys else None

    def make(self, user: str) -> UserKey:
        """A new key for ``user``, held here; the caller sends its record. A user erased here
        a moment ago gets a key made after their delete's time, even within its millisecond."""
        with self._lock:
            erased_ms = self._erased_ms.pop(user, -1)
        key = UserKey.new(user, self.config.partitions, erased_ms + 1)
        self.add(key)
        return key

    def add(self, key: UserKey) -> None:
        with self._lock:
            if key.key_id in self._by_id:
                return
            self._by_id[key.key_id] = key
            self._by_user.setdefault(key.user, []).append(key)

    def drop(self, key_ids: list[str]) -> None:
        with self._lock:
            for key_id in key_ids:
                key = self._by_id.pop(key_id, None)
                if key is None:
                    continue
                left = [k for k in self._by_user.get(key.user, ()) if k.key_id != key_id]
                if left:
                    self._by_user[key.user] = left
                else:
                    self._by_user.pop(key.user, None)

    def forget(self, user: str, deleted_ms: int | None = None) -> None:
        """Stop using the user's keys here (the user was erased); their records are the
        worker's to delete: those made up to ``deleted_ms``, the time of the delete's record."""
        with self._lock:
            for key in self._by_user.pop(user, ()):
                self._by_id.pop(key.key_id, None)
            if deleted_ms is not None:
                erased = self._erased_ms
                erased[user] = deleted_ms
                erased.move_to_end(user)
                while len(erased) > ERASED_KEPT:
                    erased.popitem(last=False)

    def open(self, raw: bytes) -> Event:
        """The event of a record value, sealed or plain JSON. EventError if it does not decode,
        its key is not held here, or the key belongs to another user than the event's."""
        key_id = sealed_key_id(raw)
        if key_id is None:
            return Event.from_bytes(raw)
        key = self._by_id.get(key_id)
        if key is None:
            raise EventError(
                f"no key {key_id} for this sealed event: its user was erased, or the key "
                "was never written"
            )
        event = Event.from_bytes(unseal(key, raw))
        if event.key != key.user:
            raise EventError(f"event of {event.key!r} sealed with a key of another user")
        return event

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read the keys topic from where this ring left it up to its current end."""
        consumer = self._reader()
        if not self._parts:
            return
        ends = consumer.end_offsets(self._parts)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in self._parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the keys topic was not read within {timeout_s:g} s")
            for tp, records in consumer.poll(timeout_ms=100, max_records=50_000).items():
                for rec in records:
                    if rec.key is None:
                        continue
                    key_id = rec.key.decode("ascii", "replace")
                    if rec.value is None:
                        self.drop([key_id])
                        continue
                    try:
                        self.add(UserKey.from_record(key_id, rec.value, tp.partition))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("keys record %s skipped: %s", key_id, exc)

    def _reader(self) -> Any:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.config.servers,
                enable_auto_commit=False,
                isolation_level="read_committed",
                fetch_max_wait_ms=20,
            )
            topic = self.config.keys
            parts = sorted(self._consumer.partitions_for_topic(topic) or ())
            self._parts = [TopicPartition(topic, p) for p in parts]
            if self._parts:
                self._consumer.assign(self._parts)
                self._consumer.seek_to_beginning(*self._parts)
        return self._consumer

    def close(self) -> None:
        """Close the topic reader (a later ``catch_up`` reads the topic again from the start)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer, self._parts = None, []
