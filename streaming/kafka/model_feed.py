"""Following the compacted Kafka models topic: the versions a worker or replica can install.

``attune train --bus kafka://...`` puts each model under the key ``cf``; compaction keeps the
newest, and this feed also keeps the few versions it has seen since it started, so a worker
restoring a partition can re-attach the version the partition record names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from collab import CFModel
from collab.watch import model_from_bytes
from streaming.kafka.bus import KafkaConfig, ensure_topics
from streaming.kafka.model_topic import MAX_MODEL_BYTES, ModelAssembler

log = logging.getLogger(__name__)

MODEL_KEY = b"cf"


class ModelFeed:
    """Read the models topic in a background thread; hand each new version to ``on_model``.

    Parameters
    ----------
    config : KafkaConfig
    on_model : callable, optional
        Called with each ``CFModel`` newer than the last, from the feed's thread.
    keep : int
        Versions kept for ``get``.
    poll_interval_s : float
        Longest wait for a new record.

    Examples
    --------
    >>> feed = ModelFeed(config).start()            # doctest: +SKIP
    >>> feed.wait_caught_up(60); feed.latest()      # doctest: +SKIP
    """

    def __init__(
        self,
        config: KafkaConfig,
        *,
        on_model: Callable[[CFModel], None] | None = None,
        keep: int = 3,
        poll_interval_s: float = 1.0,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.config = config
        self.on_model = on_model
        self.keep = keep
        self.poll_ms = max(1, int(poll_interval_s * 1000))
        self._models: dict[int, CFModel] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelFeed:
        if self._thread is None:
            ensure_topics(self.config)
            self._thread = threading.Thread(target=self._run, name="attune-models", daemon=True)
            self._thread.start()
        return self

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the topic was read up to its end as of ``start``."""
        return self._caught_up.wait(timeout_s)

    def latest(self) -> CFModel | None:
        with self._lock:
            return self._models[max(self._models)] if self._models else None

    def get(self, version: int) -> CFModel | None:
        with self._lock:
            return self._models.get(version)

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        tp = TopicPartition(self.config.models, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.servers,
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * MAX_MODEL_BYTES,
            fetch_max_bytes=4 * MAX_MODEL_BYTES,
        )
        assembler = ModelAssembler()
        try:
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=self.poll_ms).values():
                    for rec in records:
                        done = assembler.add(rec.key, rec.value)
                        if done is not None and done[0] == MODEL_KEY.decode() and done[1]:
                            self._add(done[1])
                if consumer.position(tp) >= end:
                    self._caught_up.set()
        except Exception:  # a replica or worker keeps its current model; say why
            log.exception("the models feed stopped")
        finally:
            consumer.close()

    def _add(self, data: bytes) -> None:
        try:
            model = model_from_bytes(data)
        except Exception as exc:  # a bad record must not stop the feed
            log.error("unreadable model on %s: %s", self.config.models, exc)
            return
        with self._lock:
            newest = max(self._models, default=None)
            self._models[model.version] = model
            for old in sorted(self._models)[: -self.keep]:
                del self._models[old]
        if (newest is None or model.version > newest) and self.on_model is not None:
            self.on_model(model)
