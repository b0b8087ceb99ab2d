"""The Kafka backend of the bus: topic layout, topic administration and the event producer.

Five topics share one prefix (``kafka://host:port?prefix=attune``):

- ``<prefix>.events``: decisions, feedback and profile commands, each sealed with a key of its
  user's and sent to the partition of ``tenant/user``, so a user's events stay in one
  partition, in order (``streaming.kafka.sealing``).
- ``<prefix>.keys``: compacted, the users' keys, co-partitioned with the events; a worker
  deletes an erased user's keys.
- ``<prefix>.changelog``: compacted user state, co-partitioned with the events (a worker writes a
  user's record to the partition the user's events come from) plus one ``__partition__/<p>``
  record per partition holding the partition's shared model.
- ``<prefix>.models``: compacted, trained CF models by name, in chunks
  (``streaming.kafka.model_topic``).
- ``<prefix>.deadletters``: events a worker could not apply, with the reason.

The producer waits for every in-sync replica (``acks=all``) and is idempotent, so a retried send
is never written twice and ``publish`` returning means the events are durable. Every call on
the request path is bounded in time: ``publish`` gives up after ``timeout_s`` and a broker that
stopped answering is then skipped for a moment (``available``), so a broker outage costs a
request a fast error, not a thread held for minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from streaming.kafka.sealing import KeyRing, UserKey, seal

if TYPE_CHECKING:
    from streaming.events import Event

log = logging.getLogger(__name__)

PARTITION_KEY_PREFIX = "__partition__/"
KEYS_TIMEOUT_S = 120.0  # the longest a new bus reads the keys topic (once, at start)
MODEL_CHUNK_BYTES = 4 * 1024 * 1024
MAX_MODEL_BYTES = MODEL_CHUNK_BYTES + 64 * 1024  # one record of the models topic
_COMPACTED = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": "3600000",
}
# Compacted, and records may be deleted (``publish_model``'s ``drop_older``); never by age.
MODELS_CLEANUP = {"cleanup.policy": "compact,delete", "retention.ms": "-1"}


@dataclass(frozen=True)
class KafkaConfig:
    """Where the cluster is and how attune's topics are named and sized.

    Parameters
    ----------
    bootstrap : str
        Comma-separated ``host:port`` list.
    prefix : str
        Topic name prefix; several attune deployments (or tests) can share one cluster.
    partitions : int
        Partitions of the events topic (and of the changelog, which mirrors it). Fixed once the
        topics exist: a user's partition is a hash of their key modulo this number.
    replication : int
        Replication factor of new topics (1 on a single-node development broker).

    Examples
    --------
    >>> cfg = KafkaConfig.from_url("kafka://127.0.0.1:9092?prefix=demo&partitions=4")
    >>> cfg.events, cfg.partitions
    ('demo.events', 4)
    """

    bootstrap: str
    prefix: str = "attune"
    partitions: int = 8
    replication: int = 1

    def __post_init__(self) -> None:
        if not self.bootstrap or any(":" not in h for h in self.bootstrap.split(",")):
            raise ValueError(
                f"bootstrap must be 'host:port[,host:port...]', got {self.bootstrap!r}"
            )
        if not self.prefix or not all(c.isalnum() or c in "._-" for c in self.prefix):
            raise ValueError(
                f"prefix must be letters, digits, '.', '_' or '-', got {self.prefix!r}"
            )
        if not 1 <= self.partitions <= 10_000:
            raise ValueError(f"partitions must be in [1, 10000], got {self.partitions}")
        if not 1 <= self.replication <= 16:
            raise ValueError(f"replication must be in [1, 16], got {self.replication}")

    @classmethod
    def from_url(cls, url: str) -> KafkaConfig:
        """Parse ``kafka://host:port[,host:port]?prefix=...&partitions=...&replication=...``."""
        parsed = urlparse(url)
        if parsed.scheme != "kafka":
            raise ValueError(f"expected a kafka:// URL, got {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"prefix", "partitions", "replication"}
        if unknown:
            raise ValueError(
                f"unknown kafka URL parameter(s) {sorted(unknown)}; "
                "valid: prefix, partitions, replication"
            )
        try:
            return cls(
                bootstrap=parsed.netloc,
                prefix=query.get("prefix", "attune"),
                partitions=int(query.get("partitions", 8)),
                replication=int(query.get("replication", 1)),
            )
        except ValueError as exc:
            raise ValueError(f"bad kafka URL {url!r}: {exc}") from None

    @property
    def servers(self) -> list[str]:
        return self.bootstrap.split(",")

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def changelog(self) -> str:
        return f"{self.prefix}.changelog"

    @property
    def models(self) -> str:
        return f"{self.prefix}.models"

    @property
    def deadletters(self) -> str:
        return f"{self.prefix}.deadletters"

    @property
    def keys(self) -> str:
        return f"{self.prefix}.keys"


def ensure_topics(config: KafkaConfig, *, timeout_s: float = 30.0) -> None:
    """Create attune's five topics if they are missing (existing ones are left as they are)."""
    admin = KafkaAdminClient(
        bootstrap_servers=config.servers,
        client_id="attune-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        sized = {"num_partitions": config.partitions, "replication_factor": config.replication}
        wanted: dict[str, dict[str, Any]] = {
            config.events: dict(sized),
            config.changelog: dict(sized, configs=_COMPACTED),
            config.keys: dict(sized, configs=_COMPACTED),
            config.models: {
                "num_partitions": 1,
                "replication_factor": config.replication,
                "configs": {
                    **_COMPACTED,
                    **MODELS_CLEANUP,
                    "max.message.bytes": str(MAX_MODEL_BYTES),
                },
            },
            config.deadletters: {"num_partitions": 1, "replication_factor": config.replication},
        }
        missing = {name: spec for name, spec in wanted.items() if name not in existing}
        if missing:
            # Another process may create them between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    missing, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True
                )
            log.info("created topics %s", sorted(missing))
    finally:
        admin.close()


def make_producer(config: KafkaConfig, **params: Any) -> KafkaProducer:
    """A durable producer: every replica acknowledges, retries never duplicate."""
    defaults: dict[str, Any] = {
        "bootstrap_servers": config.servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
        "compression_type": None,
        # A restarted broker is back within seconds; do not back off for 30 s (the default).
        "reconnect_backoff_max_ms": 2000,
    }
    defaults.update(params)
    return KafkaProducer(**defaults)


def dead_letter(
    raw: bytes | None, reason: str, *, topic: str, partition: int, offset: int, key: bytes | None
) -> bytes:
    """The dead-letter record for an event that could not be applied: JSON with the reason,
    where it came from and the raw bytes (as text when they decode, else as hex)."""
    try:
        body: str | None = None if raw is None else raw.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body, encoding = (raw or b"").hex(), "hex"
    return json.dumps(
        {
            "reason": reason,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key is None else key.decode("utf-8", "replace"),
            "value": body,
            "encoding": encoding,
        }
    ).encode()


def event_bytes(event: Event) -> bytes:
    """An event's JSON for a dead letter, whatever its payload holds: values the strict
    encoder refuses (NaN, integers past 64 bits) are written as orjson or repr writes them."""
    try:
        return event.to_bytes()
    except (ValueError, TypeError):
        try:
            return orjson.dumps(event.to_dict())
        except TypeError:
            return json.dumps(event.to_dict(), default=repr).encode()


class KafkaBus:
    """Publish events to ``<prefix>.events``, sealed with their user's key.

    A user's first event here makes them a key: its record goes to ``<prefix>.keys`` before
    the event, in the same wait. The keys already on the topic are read once, at start, so a
    restarted replica goes on with the users' keys. After a delete event the user's keys are no
    longer used here (``forget`` does the same for deletes another replica took).

    Parameters
    ----------
    config : KafkaConfig or str
        A config or a ``kafka://`` URL.
    create_topics : bool
        Create missing topics on construction.
    timeout_s : float
        The longest ``publish`` waits for the broker; also how long sends may go unanswered
        before the broker counts as unavailable (an API replica uses ``PUBLISH_TIMEOUT_S``).
    retry_after_s : float
        After a failure, ``publish`` fails at once for this long (but for one probe at a
        time), and decisions are not sent.

    Examples
    --------
    >>> bus = KafkaBus("kafka://127.0.0.1:9092?prefix=demo")  # doctest: +SKIP
    >>> bus.publish([event])                                   # doctest: +SKIP
    >>> bus.close()                                            # doctest: +SKIP
    """

    def __init__(
        self,
        config: KafkaConfig | str,
        *,
        create_topics: bool = True,
        timeout_s: float = 30.0,
        retry_after_s: float = 1.0,
        **producer_params: Any,
    ) -> None:
        self.config = KafkaConfig.from_url(config) if isinstance(config, str) else config
        if create_topics:
            ensure_topics(self.config)
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        params = {"max_block_ms": int(timeout_s * 1000), **producer_params}
        self._producer = make_producer(self.config, **params)
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._down_until = 0.0
        self._pending = 0  # sends not yet acknowledged or failed
        self._waiting_since = 0.0  # when the oldest of them was sent (roughly)
        self.dropped = 0  # decisions not sent because the broker was unavailable
        self.ring = KeyRing.loaded(self.config, max(timeout_s, KEYS_TIMEOUT_S))
        self._unacked: dict[str, Any] = {}  # key id -> the future of its record, until acked
        self._resend: list[UserKey] = []  # keys whose record failed, sent with the next event

    @classmethod
    def from_url(cls, url: str, **params: Any) -> KafkaBus:
        return cls(KafkaConfig.from_url(url), **params)

    @property
    def available(self) -> bool:
        """Whether the broker answers: no recent failure, and no send waiting unanswered
        for longer than ``timeout_s``."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        with self._lock:
            return not (self._pending and now - self._waiting_since > self.timeout_s)

    def publish(self, events: Sequence[Event] | Iterable[Event]) -> None:
        """Send the events and return once the broker has them on every in-sync replica.

        Raises ``KafkaTimeoutError`` after ``timeout_s`` (or at once while the broker is
        unavailable and another request is already probing it), or the producer's error.
        """
        probing = not self.available
        if probing and not self._probe.acquire(blocking=False):
            raise KafkaTimeoutError("the Kafka broker is unavailable")
        deadline = time.monotonic() + self.timeout_s
        try:
            futures = [f for e in events for f in self._send_event(e)]
            for future in futures:
                future.get(timeout=max(0.001, deadline - time.monotonic()))
        except KafkaError:
            self._down_until = time.monotonic() + self.retry_after_s
            raise
        finally:
            if probing:
                self._probe.release()

    def publish_nowait(self, events: Sequence[Event] | Iterable[Event]) -> bool:
        """Send without waiting for the broker: the API's decision events, where a lost event
        costs one observation and a wait would cost most of the latency budget. Later events
        of the same user stay behind them (one partition, idempotent producer), so a durable
        ``publish`` of a user's feedback also makes their earlier decisions durable. While the
        broker is unavailable nothing is sent (``dropped`` counts them) and it returns False."""
        events = list(events)
        if not self.available:
            self.dropped += len(events)
            return False
        for e in events:
            self._send_event(e)
        return True

    def _send_event(self, event: Event) -> list[Any]:
        """Send the event sealed (and first its user's new key, if it needs one). The futures
        to wait on include the key's until the broker has it: an acknowledged event always has
        its key on the topic."""
        while self._resend:
            lost = self._resend.pop()
            if self.ring.get(lost.key_id) is not None:  # not since forgotten (erased)
                self._send_key(lost)
        user = event.key
        key = self.ring.current(user)
        if key is None:
            key = self.ring.make(user)
            self._send_key(key)
        unacked = self._unacked.get(key.key_id)
        futures = [] if unacked is None else [unacked]
        value = seal(key, event.to_bytes())
        now_ms = int(time.time() * 1000)  # the record's time: workers erase keys made until then
        futures.append(self._send(self.config.events, None, value, key.partition, now_ms))
        if event.is_delete:
            self.ring.forget(user, now_ms)  # a user who comes back gets a new key, made later
        return futures

    def _send_key(self, key: UserKey) -> None:
        """Send a key's record. One that does not reach the broker is sent again with the next
        event: events sealed with it may have reached it (another topic), and workers wait
        for their key."""
        key_id = key.key_id
        future = self._send(self.config.keys, key_id.encode(), key.record(), key.partition)
        self._unacked[key_id] = future
        future.add_callback(lambda _, k=key_id: self._unacked.pop(k, None))
        future.add_errback(lambda _, k=key: self._resend.append(k))

    def forget(self, user: str) -> None:
        """Stop using the user's keys: another replica took their delete."""
        self.ring.forget(user)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int,
        timestamp_ms: int | None = None,
    ) -> Any:
        with self._lock:
            if not self._pending:
                self._waiting_since = time.monotonic()
            self._pending += 1
        future = self._producer.send(
            topic, key=key, value=value, partition=partition, timestamp_ms=timestamp_ms
        )
        future.add_callback(self._answered).add_errback(self._failed)
        return future

    def _answered(self, _: Any) -> None:
        with self._lock:
            self._pending -= 1
            self._waiting_since = time.monotonic()

    def _failed(self, _: Any) -> None:
        self._answered(None)
        self._down_until = time.monotonic() + self.retry_after_s

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Send bytes as they are (tools and tests use it to inject foreign events)."""
        self._producer.send(self.config.events, key=key, value=value).get(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=5)
