"""Reading the compacted user-state changelog: a worker's restore and an API replica's view.

Records are keyed ``tenant/user`` with the bytes of ``Processor.export_record`` as value
(``streaming.user_record`` version 2; a tombstone, value None, once the user is deleted),
plus one ``__partition__/<p>`` record per partition with the partition's shared state (see
``encode_partition``). Workers write them in
Kafka transactions, so readers use ``read_committed``: what they see is exactly the state of
committed offsets, never half of a batch.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition

from streaming.kafka.bus import PARTITION_KEY_PREFIX, KafkaConfig

log = logging.getLogger(__name__)
PARTITION_SCHEMA_VERSION = 1


class StateSink(Protocol):
    """What the changelog is applied to (``streaming.processor.Processor`` is one)."""

    def import_user(self, key: str, data: bytes | None) -> None: ...

    def import_shared(self, partition: int, data: bytes) -> None: ...


def partition_key(partition: int) -> bytes:
    return f"{PARTITION_KEY_PREFIX}{partition}".encode()


def encode_partition(shared: bytes, watermark: float) -> bytes:
    """The ``__partition__/<p>`` record: the shared model and the partition's event-time
    watermark (the clock pending decisions expire by), schema-versioned."""
    return json.dumps(
        {
            "version": PARTITION_SCHEMA_VERSION,
            "watermark": watermark,
            "shared": base64.b64encode(shared).decode("ascii"),
        }
    ).encode()


def decode_partition(data: bytes) -> tuple[bytes, float]:
    """Inverse of ``encode_partition``; raises ValueError on an unknown version."""
    doc = json.loads(data)
    if doc.get("version") != PARTITION_SCHEMA_VERSION:
        raise ValueError(
            f"partition record schema version {doc.get('version')!r} is not supported "
            f"(this attune reads version {PARTITION_SCHEMA_VERSION})"
        )
    return base64.b64decode(doc["shared"]), float(doc["watermark"])


@dataclass
class PartitionSnapshot:
    """The last committed state of one changelog partition.

    Attributes
    ----------
    users : dict of str to bytes or None
        Latest record per user key (None: deleted).
    shared : bytes or None
        The partition's shared state, None before the first committed batch.
    watermark : float
    end_offset : int
        The changelog offset the snapshot reaches (exclusive).
    """

    users: dict[str, bytes | None] = field(default_factory=dict)
    shared: bytes | None = None
    watermark: float = 0.0
    end_offset: int = 0


def _consumer(config: KafkaConfig, **params: Any) -> KafkaConsumer:
    defaults: dict[str, Any] = {
        "bootstrap_servers": config.servers,
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 64 * 1024 * 1024,
        "reconnect_backoff_max_ms": 2000,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
    }
    defaults.update(params)
    return KafkaConsumer(**defaults)


def read_partitions(
    config: KafkaConfig, partitions: list[int], *, timeout_s: float = 120.0
) -> dict[int, PartitionSnapshot]:
    """Read changelog partitions from the beginning to their last stable offset.

    Call it after the committed offsets of the events partitions were fetched (a fetch with
    ``read_committed`` waits for pending transactions), so no transaction that commits those
    offsets can still be open: the snapshot then holds exactly the state they reflect.
    """
    out = {p: PartitionSnapshot() for p in partitions}
    if not partitions:
        return out
    consumer = _consumer(config)
    try:
        tps = [TopicPartition(config.changelog, p) for p in partitions]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog restore of partitions {partitions} timed out")
            for tp, records in consumer.poll(timeout_ms=200, max_records=50_000).items():
                snap = out[tp.partition]
                for rec in records:
                    if rec.offset < ends[tp]:
                        _apply_record(snap, rec.key, rec.value)
            for tp in list(todo):
                if consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        for tp in tps:
            out[tp.partition].end_offset = ends[tp]
    finally:
        consumer.close()
    return out


def _apply_record(snap: PartitionSnapshot, key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    name = key.decode("utf-8")
    if name.startswith(PARTITION_KEY_PREFIX):
        if value is not None:
            snap.shared, snap.watermark = decode_partition(value)
    else:
        snap.users[name] = value


class ChangelogMaterializer:
    """Follow the whole changelog in a background thread and apply it to a sink.

    API replicas use it to serve decisions and profiles from the state the workers commit.

    Parameters
    ----------
    config : KafkaConfig
    sink : StateSink
        Receives every user record (``import_user``) and partition record (``import_shared``).
    lock : threading.Lock-like, optional
        Held while a polled batch is applied, so readers see whole batches.
    on_apply : callable, optional
        Called with the set of keys after each applied batch (metrics, latency probes).
    on_erased : callable, optional
        Called with a user's key for each tombstone (the user was erased).

    Examples
    --------
    >>> view = ChangelogMaterializer(config, processor)  # doctest: +SKIP
    >>> view.start(); view.wait_caught_up(30)             # doctest: +SKIP
    """

    def __init__(
        self,
        config: KafkaConfig,
        sink: StateSink,
        *,
        lock: Any = None,
        on_apply: Callable[[set[str]], None] | None = None,
        on_erased: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.lock = lock if lock is not None else threading.RLock()
        self.on_apply = on_apply
        self.on_erased = on_erased
        self.applied = 0
        self.errors = 0
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChangelogMaterializer:
        self._thread = threading.Thread(target=self._run, name="attune-changelog", daemon=True)
        self._thread.start()
        return self

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the view has read what was committed when it started."""
        return self._caught_up.wait(timeout_s)

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        consumer = _consumer(self.config, fetch_max_wait_ms=20)
        try:
            parts = consumer.partitions_for_topic(self.config.changelog) or set()
            while not parts and not self._stop.is_set():
                time.sleep(0.2)  # topics not created yet
                parts = consumer.partitions_for_topic(self.config.changelog) or set()
            tps = [TopicPartition(self.config.changelog, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=50, max_records=20_000)
                if batch:
                    self._apply(batch)
                if not self._caught_up.is_set() and all(
                    consumer.position(tp) >= ends[tp] for tp in tps
                ):
                    self._caught_up.set()
                    log.info("changelog view caught up (%d records)", self.applied)
        except Exception:
            log.exception("changelog materializer stopped")
            raise
        finally:
            consumer.close()

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        keys: set[str] = set()
        with self.lock:
            for tp, records in batch.items():
                for rec in records:
                    if rec.key is None:
                        continue
                    name = rec.key.decode("utf-8")
                    try:
                        if name.startswith(PARTITION_KEY_PREFIX):
                            if rec.value is not None:
                                shared, _ = decode_partition(rec.value)
                                self.sink.import_shared(tp.partition, shared)
                        else:
                            self.sink.import_user(name, rec.value)
                            keys.add(name)
                            if rec.value is None and self.on_erased is not None:
                                self.on_erased(name)
                    except Exception as exc:  # one bad record must not stop the view
                        self.errors += 1
                        log.warning("changelog record %s@%d skipped: %s", name, rec.offset, exc)
                    self.applied += 1
        if self.on_apply is not None and keys:
            self.on_apply(keys)
