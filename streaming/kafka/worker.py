"""The Kafka worker: one member of a consumer group applying its partitions' events.

What it promises: nothing lost, nothing counted twice, whatever crashes or rebalances. Every
polled batch is one Kafka transaction holding the changelog records of the users it changed,
one partition record per touched partition (its shared model and event-time watermark) and the
consumed offsets, so committed offsets never run ahead of the durable state that reflects them.
A partition taken over is restored from the changelog up to its last stable offset and consumed
from its committed offset; each user's record remembers the event ids it applied. Each
partition has its own processor and engine, and pending decisions expire by event time, so the
state after an offset does not depend on how the stream was cut into batches.

README.md ("Running on Kafka") tells the whole story; keep a worker's ``worker_id`` across
restarts (its transactional id and static membership derive from it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import FencedInstanceIdError, KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from streaming.events import Event, EventError
from streaming.kafka.bus import (
    KafkaConfig,
    dead_letter,
    ensure_topics,
    event_bytes,
    make_producer,
)
from streaming.kafka.changelog import encode_partition, partition_key, read_partitions
from streaming.kafka.metrics import WorkerMetrics, WorkerStats
from streaming.kafka.poison import PartitionFailed, PoisonGuard
from streaming.kafka.sealing import KeyRing, seal, sealed_key_id
from streaming.kafka.transactions import end_transaction, send_offsets
from streaming.models import install_pending_model

log = logging.getLogger(__name__)

KEY_WAIT_S = 60.0  # the longest a partition waits for a key its next event was sealed with
MAX_KEY_WAITS = 10_000


class WorkerIdTaken(RuntimeError):
    """Another running worker uses this worker's id: Kafka fenced this one."""


class _Dirty(ConsumerRebalanceListener):
    """Marks partitions whose local state may be stale; the worker acts on it after ``poll``
    (a listener must not call the consumer: it runs on the consumer's event loop)."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions.update(tp.partition for tp in revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions.update(tp.partition for tp in assigned)

    def on_partitions_lost(self, lost: Any) -> None:
        self.partitions.update(tp.partition for tp in lost)


class KafkaWorker:
    """Consume ``<prefix>.events`` in a consumer group and keep user state on the changelog.

    Parameters
    ----------
    make_processor : callable
        ``make_processor(partition)`` returns a fresh ``streaming.processor.Processor`` (with
        its own engine) for a partition this worker takes over.
    config : KafkaConfig
    worker_id : str
        Stable name of this worker (keep it across restarts; see the module docstring).
    group_id : str
        Consumer group; defaults to ``<prefix>.workers``.
    max_batch : int
        Most events per transaction.
    transaction_timeout_ms : int
        How long a transaction of a vanished worker blocks its partitions at most.
    static_membership : bool
        Join as static member ``worker_id`` (KIP-345): a restarted worker takes its partitions
        back at once, without a rebalance; a worker gone for good releases them after
        ``session_timeout_ms``. A worker that another one with the same id fences stops with
        ``WorkerIdTaken`` rather than fencing it back.
    max_attempts : int
        Transactions a record may abort on its own before it is dead-lettered
        (``streaming.kafka.poison``).
    on_commit : callable, optional
        Called with ``(n_events, changed_keys)`` after each committed transaction.

    Examples
    --------
    >>> worker = KafkaWorker(lambda p: Processor(Engine(), RewardComposer()), config,
    ...                      worker_id="w0")                 # doctest: +SKIP
    >>> worker.run(stop=threading.Event())                        # doctest: +SKIP
    """

    def __init__(
        self,
        make_processor: Callable[[int], Any],
        config: KafkaConfig,
        *,
        worker_id: str,
        group_id: str | None = None,
        max_batch: int = 10_000,
        poll_timeout_ms: int = 100,
        transaction_timeout_ms: int = 15_000,
        session_timeout_ms: int = 10_000,
        static_membership: bool = True,
        log_every_s: float = 10.0,
        on_commit: Callable[[int, set[str]], None] | None = None,
        max_attempts: int = 3,
    ) -> None:
        if not worker_id or not all(c.isalnum() or c in "._-" for c in worker_id):
            raise ValueError(
                f"worker_id must be letters, digits, '.', '_' or '-', got {worker_id!r}"
            )
        if not 1 <= max_batch <= 1_000_000:
            raise ValueError(f"max_batch must be in [1, 1000000], got {max_batch}")
        self.make_processor = make_processor
        self.processors: dict[int, Any] = {}  # partition -> Processor of the owned partitions
        self.config = config
        self.worker_id = worker_id
        self.group_id = group_id or f"{config.prefix}.workers"
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.log_every_s = log_every_s
        self.on_commit = on_commit
        self.stats = WorkerStats()
        self.metrics = WorkerMetrics(worker_id)
        self.guard = PoisonGuard(max_attempts)
        ensure_topics(config)
        # The users' keys open their sealed events; a key missing here is looked for on the
        # keys topic (once per batch) before its event is dead-lettered.
        self.ring = KeyRing(config)
        self.ring.catch_up()
        self._erased_keys: list[str] = []  # tombstoned in the open transaction
        self._key_wait: OrderedDict[str, float] = OrderedDict()  # key id -> waited since
        self._dirty = _Dirty()
        self._watermark: dict[int, float] = {}
        self._transaction_timeout_ms = transaction_timeout_ms
        # The longest a commit or an abort is waited for: the broker gives up on the
        # transaction by then anyway.
        self._transaction_s = transaction_timeout_ms / 1000
        self._in_transaction = False
        self._producer = self._new_producer()
        self._consumer = KafkaConsumer(
            bootstrap_servers=config.servers,
            group_id=self.group_id,
            client_id=f"attune-worker-{worker_id}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            max_poll_records=max_batch,
            heartbeat_interval_ms=max(500, session_timeout_ms // 4),
            group_instance_id=worker_id if static_membership else None,
            # A fetch returns at once when data is there; this only bounds the idle wait, which
            # is also the floor of the feedback-to-state latency.
            fetch_max_wait_ms=20,
            reconnect_backoff_max_ms=2000,
            # The group leader assigns from its metadata; one refresh that misses the topic
            # (seen right after topic creation and broker restarts) leaves the group with no
            # assignment until the next refresh notices the change: keep that short.
            metadata_max_age_ms=5000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        # The group leader assigns only partitions it has metadata for; subscribing before the
        # topic's metadata arrived (fresh topic, restarted broker) could leave this member
        # with nothing until the next metadata-triggered rebalance.
        deadline = time.monotonic() + 60
        while not self._consumer.partitions_for_topic(config.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no metadata for topic {config.events}")
            time.sleep(0.2)
        self._consumer.subscribe([config.events], listener=self._dirty)
        self._last_log = time.monotonic()

    # ------------------------------------------------------------------ loop
    def run(
        self, *, stop: threading.Event | None = None, idle_exit_s: float | None = None
    ) -> WorkerStats:
        """Process until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                if self.step():
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
        finally:
            self.close()
        return self.stats

    def step(self) -> int:
        """Poll once and process what came in one transaction; returns the events applied.

        Errors (a fenced or failed transaction, a broker that went away) are logged, not
        raised: the open transaction is aborted and every owned partition is rebuilt from the
        changelog before the next batch, since local state may be ahead of what committed.
        """
        try:
            if self._producer is None:  # dropped by a failed batch (see _recover)
                self._producer = self._new_producer()
            batch = self._consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_batch)
            if self._dirty.partitions:
                self._resync()
                batch = {}  # positions were reset to the committed offsets; refetch
            if batch:
                self._process(batch)
        except (FencedInstanceIdError, ProducerFencedError) as exc:
            raise WorkerIdTaken(
                f"worker id {self.worker_id!r} is in use by another running worker (Kafka "
                f"fenced this one: {type(exc).__name__}); give every worker its own --worker-id"
            ) from exc
        except Exception as exc:
            if isinstance(exc, PartitionFailed):
                self.guard.failed(exc.partition, exc.records, exc.error)
            log.exception("worker %s: batch failed; restoring from the changelog", self.worker_id)
            self.stats.aborts += 1
            self._recover()
            return 0
        self._maybe_log()
        return sum(len(v) for v in batch.values())

    def _recover(self) -> None:
        if self._in_transaction:
            self._in_transaction = False
            try:
                end_transaction(self._producer, commit=False, timeout_s=self._transaction_s)
            except Exception:
                # A producer in a fatal state (fenced, timed out, its broker gone) cannot
                # abort; a new one with the same transactional id aborts the open transaction
                # in init_transactions. The next step makes it: while the broker is away that
                # fails too, and a failed step is retried.
                log.warning("abort failed; starting a new producer", exc_info=True)
                producer, self._producer = self._producer, None
                with contextlib.suppress(Exception):
                    producer.close(timeout=5)
        self._erased_keys.clear()  # their tombstones were aborted with the transaction
        self._dirty.partitions.update(self.processors)
        self._dirty.partitions.update(tp.partition for tp in self._consumer.assignment())
        time.sleep(0.5)  # a broker that is restarting needs a moment; do not spin

    def _new_producer(self) -> Any:
        producer = make_producer(
            self.config,
            transactional_id=f"{self.config.prefix}.worker.{self.worker_id}",
            transaction_timeout_ms=self._transaction_timeout_ms,
            # The commit flushes whatever lingers, so lingering costs no latency; it lets
            # the sender thread wake once per transaction instead of contending for the
            # accumulator (and the GIL) on every few sends.
            linger_ms=1000,
            batch_size=1024 * 1024,
        )
        producer.init_transactions()
        return producer

    def close(self) -> None:
        for closer in (
            self._consumer.close,
            getattr(self._producer, "close", None),
            self.ring.close,
        ):
            if closer is None:
                continue
            try:
                closer()
            except Exception:  # closing is best effort; the broker may be gone
                log.debug("close failed", exc_info=True)

    # ------------------------------------------------------------------ one transaction
    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        producer = self._producer
        producer.begin_transaction()
        self._in_transaction = True
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        changed_all: set[str] = set()
        n_events = 0
        for tp, polled in batch.items():
            p = tp.partition
            processor = self.processors.get(p)
            if processor is None:  # not restored yet: leave its offset alone, it is refetched
                continue
            records = self._keyed_head(p, self.guard.limit(p, polled))
            if not records:  # its first record waits for its key: fetched again
                self._consumer.seek(tp, polled[0].offset)
                time.sleep(0.05)
                continue
            reason = self.guard.verdict(p, records[0].offset)
            if reason is not None:
                rec = records[0]
                self._send_dead_letter(rec.value, reason, p, rec.offset, rec.key)
                changed: set[str] = set()
            else:
                try:
                    changed = self._apply_partition(processor, records, p)
                except KafkaError:
                    raise
                except Exception as exc:
                    raise PartitionFailed(p, records, exc) from exc
            n_events += len(records)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            changed_all |= changed
        # Bounded waits: kafka-python's own may never end after a broker restart.
        send_offsets(producer, offsets, self._consumer.group_metadata(), self._transaction_s)
        end_transaction(producer, commit=True, timeout_s=self._transaction_s)
        self._in_transaction = False
        self.ring.drop(self._erased_keys)
        self._erased_keys.clear()
        for tp, offset in offsets.items():
            polled = batch[tp]
            self.guard.passed(tp.partition, polled[0].offset)
            if offset.offset <= polled[-1].offset:  # a head only: the rest is fetched again
                self._consumer.seek(tp, offset.offset)
        self.stats.events += n_events
        self.stats.batches += 1
        self.stats.changelog_records += len(changed_all) + len(batch)
        self.metrics.committed(n_events, len(changed_all))
        if self.on_commit is not None:
            self.on_commit(n_events, changed_all)

    def _apply_partition(self, processor: Any, records: Sequence[Any], p: int) -> set[str]:
        """Apply one partition's records and send what they changed: user records, then the
        partition record (inside the open transaction)."""
        # CF models (streaming/models.py): a new version goes in at a batch boundary; the
        # partition record below carries its version in this transaction.
        changed = install_pending_model(processor, p, records[0].offset)
        decoded = self._decode(records, p)
        changed |= self._apply(processor, [event for event, _ in decoded], p)
        self._dead_letter_rejected(processor, p)
        producer, cfg = self._producer, self.config
        deletes = [(event.key, rec.timestamp) for event, rec in decoded if event.is_delete]
        if deletes:
            self.ring.catch_up()  # keys made before the delete whose events come after it
        for user, deleted_ms in deletes:
            self._erase_keys(user, deleted_ms)
        for key in changed:
            producer.send(
                cfg.changelog, key=key.encode(), value=processor.export_record(key), partition=p
            )
        producer.send(
            cfg.changelog,
            key=partition_key(p),
            partition=p,
            value=encode_partition(processor.export_shared(p), self._watermark.get(p, 0.0)),
        )
        return changed

    def _apply(self, processor: Any, events: list[Event], partition: int) -> set[str]:
        changed, self._watermark[partition] = apply_in_order(
            processor, events, partition, self._watermark.get(partition, 0.0)
        )
        return changed

    def _keyed_head(self, p: int, records: Sequence[Any]) -> Sequence[Any]:
        """The records up to the first one whose key is neither held here nor on the keys
        topic yet. A key's record and its events go to different topics, so an event can
        arrive first; the partition then waits for it (fetching the rest again) for up to
        ``KEY_WAIT_S``, longer than any publish waits for its acknowledgement, so an
        acknowledged event is never dead-lettered for want of its key. A key still missing
        after that was never written: ``_decode`` dead-letters its events."""
        missing = [(i, k) for i, rec in enumerate(records) if (k := self._missing_key(rec))]
        if not missing:
            return records
        self.ring.catch_up()
        now, waits = time.monotonic(), self._key_wait
        for i, key_id in missing:
            if self.ring.get(key_id) is not None:  # it came
                waits.pop(key_id, None)
                continue
            since = waits.setdefault(key_id, now)
            if now - since < KEY_WAIT_S:
                return records[:i]
        while len(waits) > MAX_KEY_WAITS:  # keys long given up on
            waits.popitem(last=False)
        return records

    def _missing_key(self, rec: Any) -> str | None:
        """The id of the key that sealed ``rec`` if this worker does not hold it."""
        try:
            key_id = sealed_key_id(rec.value)
        except EventError:
            return None  # undecodable: dead-lettered by _decode
        return key_id if key_id is not None and self.ring.get(key_id) is None else None

    def _decode(self, records: Sequence[Any], partition: int) -> list[tuple[Event, Any]]:
        """The records' events in log order, each with its record; the ones that do not
        decode are dead-lettered."""
        events = []
        for rec in records:
            try:
                events.append((self._open(rec), rec))
            except EventError as exc:
                self._send_dead_letter(rec.value, str(exc), partition, rec.offset, rec.key)
        return events

    def _open(self, rec: Any) -> Event:
        event = self.ring.open(rec.value)
        if rec.key is not None and rec.key.decode("utf-8", "replace") != event.key:
            raise EventError(f"message key {rec.key!r} does not match event key {event.key!r}")
        return event

    def _erase_keys(self, user: str, deleted_ms: int) -> None:
        """Tombstone the user's keys made before their delete was sent (a user who came back
        since has a newer key): the records of the open transaction's user erasure."""
        for key in self.ring.keys_of(user):
            if key.created_ms <= deleted_ms:
                self._producer.send(
                    self.config.keys, key=key.key_id.encode(), value=None, partition=key.partition
                )
                self._erased_keys.append(key.key_id)

    def _dead_letter_rejected(self, processor: Any, partition: int) -> None:
        """The events the processor refused, sealed again with their user's key (if they came
        sealed), so a dead letter is erased with its user."""
        for event, reason in processor.take_rejected():
            raw, key = event_bytes(event), self.ring.current(event.key)
            if key is None:
                self._send_dead_letter(raw, str(reason), partition, -1, event.key.encode())
            else:
                self._send_dead_letter(seal(key, raw), str(reason), partition, -1, None)

    def _send_dead_letter(
        self, raw: bytes | None, reason: str, partition: int, offset: int, key: bytes | None
    ) -> None:
        value = dead_letter(
            raw, reason, topic=self.config.events, partition=partition, offset=offset, key=key
        )
        self._producer.send(self.config.deadletters, key=key, value=value)
        self.stats.dead_letters += 1
        self.metrics.dead_letter()
        log.warning("dead letter from partition %d offset %d: %s", partition, offset, reason)

    # ------------------------------------------------------------------ rebalance
    def _resync(self) -> None:
        """Drop the state of partitions that moved, restore the ones this worker now owns."""
        dirty, self._dirty.partitions = self._dirty.partitions, set()
        assigned = {tp.partition for tp in self._consumer.assignment()}
        for p in dirty:
            self.processors.pop(p, None)
            self._watermark.pop(p, None)
        restore = sorted(dirty & assigned)
        if not restore:
            return
        tps = [TopicPartition(self.config.events, p) for p in restore]
        # Committed offsets first: the fetch waits for pending transactions, so the changelog
        # read afterwards holds every transaction that committed these offsets.
        committed = {tp: self._consumer.committed(tp) for tp in tps}
        snapshots = read_partitions(self.config, restore)
        for tp in tps:
            p, snap = tp.partition, snapshots[tp.partition]
            processor = self.processors[p] = self.make_processor(p)
            if snap.shared is not None:
                processor.import_shared(p, snap.shared)
            for key, data in snap.users.items():
                if data is not None:
                    processor.import_user(key, data, partition=p)
            self._watermark[p] = snap.watermark
            offset = committed[tp]
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
            log.info(
                "worker %s restored partition %d: %d users, from offset %s",
                self.worker_id,
                p,
                len(snap.users),
                offset,
            )
        self.stats.restores += len(restore)

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        lag = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[tp.partition] = max(0, high - self._consumer.position(tp))
        if not lag:
            log.warning(
                "worker %s has no partitions assigned (more workers than partitions, "
                "or the group is rebalancing)",
                self.worker_id,
            )
        self.stats.lag = lag
        self.metrics.set_lag(lag)
        log.info(
            "worker %s: %d events, %d batches, %d dead letters, lag %s",
            self.worker_id,
            self.stats.events,
            self.stats.batches,
            self.stats.dead_letters,
            lag,
        )


def apply_in_order(
    processor: Any, events: list[Event], partition: int, watermark: float
) -> tuple[set[str], float]:
    """Apply a partition's events in log order; returns the changed keys and the new watermark
    (``Processor.apply_log``: the result does not depend on where the stream was cut into
    batches or transactions)."""
    changed, watermark = processor.apply_log(events, partition=partition, watermark=watermark)
    return changed, watermark
