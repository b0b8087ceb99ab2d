"""The Kafka backend: an API replica that publishes events and serves the workers' state.

The replica publishes decisions, feedback and profile commands to the events topic and serves
decisions and profiles from the user state it materializes from the compacted changelog that
``attune worker`` processes write. Replicas keep no state of their own, so any number can run
side by side behind a load balancer. By design, unlike the embedded backend:

- Feedback is accepted once it is durable on Kafka; the worker joins it to its decision and
  drops repeated event ids, so a resent feedback is accepted here and counted once there.
- A decision made by another replica is known here once its changelog record arrives; feedback
  that races ahead of it waits up to ``JOIN_WAIT_S`` for it (at most ``MAX_JOIN_WAITS``
  requests wait at once; the others get 404 at once, so unknown ids cannot hold the pool); an
  idempotent retry of it (``find_decision``) does not wait.
- While the broker does not answer, feedback, profile changes and deletes get 503 within
  about a second, and decisions are served from the state held here (not logged).
- A delete goes to the workers whichever replica takes it, even one that does not hold the
  user; it returns once the workers' tombstone reaches this replica.
- Exports carry profile and state; the raw events stay in Kafka (its retention applies),
  sealed with keys of their user's that the delete erases (``streaming.kafka.sealing``).
  The replica that takes a delete also rewrites what ``attune train`` left in its data folder
  (exports, models) without the user, as the embedded backend does.
- CF models come from the models topic: a new version gives the replica its arm embeddings and
  cold-start prior; user state stays the workers'.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from collab import (
    CatalogMismatch,
    CFModel,
    ClusterPrior,
    PriorMap,
    Priors,
    check_catalog,
    warm_start,
)
from collab.watch import model_to_bytes
from streaming.bus import ServingOptions, Unavailable
from streaming.erasure import scrub_files
from streaming.events import Event
from streaming.kafka.bus import KafkaBus, KafkaConfig
from streaming.kafka.changelog import ChangelogMaterializer
from streaming.kafka.model_feed import MODEL_KEY, ModelFeed
from streaming.kafka.model_topic import publish_model
from streaming.memory import UserMemory
from streaming.models import Installed, ModelHost, ModelProcessor
from streaming.payloads import DecisionPayload

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0  # feedback gets its 503 well within 2 s of a broker going away
JOIN_WAIT_S = 5.0
MAX_JOIN_WAITS = 8
DELETE_TIMEOUT_S = 15.0
APPLY_TIMEOUT_S = 15.0
CATCH_UP_TIMEOUT_S = 120.0
MODELS_TIMEOUT_S = 60.0
RECENT_DECISIONS = 100_000


class KafkaBackend:
    """The ``kafka://`` backend (see ``streaming.bus.Backend``).

    Parameters
    ----------
    url : str
        ``kafka://host:port?prefix=...``.
    options : ServingOptions
    """

    store_path = None  # nothing on local disk: replicas are stateless
    erases_unknown = True

    def __init__(self, url: str, options: ServingOptions) -> None:
        self.config = KafkaConfig.from_url(url)
        self.data_dir = Path(options.data_dir)  # where attune train may have left exports
        self.engine = options.engine(options.random_state)
        # The view applies changelog records to the serving engine under the engine's own lock,
        # so a decision never sees half of a user's record.
        self.processor = ModelProcessor(
            self.engine, options.rewards, combine_partitions=True, **options.processor_params()
        )
        self.view = ChangelogMaterializer(
            self.config,
            self.processor,
            lock=self.engine.lock,
            on_apply=self._on_apply,
            on_erased=self._on_erased,
        )
        self.models = ReplicaModels(
            self.engine, self.config, options.poll_interval_s, self.processor.is_forgotten
        )
        self.bus: KafkaBus | None = None
        self._recent: OrderedDict[str, str] = OrderedDict()  # decision id -> user key
        # Changelog records seen per user key, for the keys a delete waits on only.
        self._records: dict[str, int] = {}
        self._changed = threading.Condition()
        self._join_waits = threading.BoundedSemaphore(MAX_JOIN_WAITS)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.bus = KafkaBus(self.config, timeout_s=PUBLISH_TIMEOUT_S)
        self.view.start()
        if not self.view.wait_caught_up(CATCH_UP_TIMEOUT_S):
            raise TimeoutError(
                f"the changelog view did not catch up within {CATCH_UP_TIMEOUT_S:g} s"
            )
        self.models.start()

    def stop(self) -> None:
        self.models.stop()
        self.view.close()
        if self.bus is not None:
            self.bus.close()

    def _on_apply(self, keys: set[str]) -> None:
        with self._changed:
            records = self._records
            for key in keys & records.keys() if records else ():
                records[key] += 1
            self._changed.notify_all()

    def _on_erased(self, key: str) -> None:
        if self.bus is not None:  # a delete another replica took: the user's keys are gone
            self.bus.forget(key)

    def _bus(self) -> KafkaBus:
        assert self.bus is not None, "backend not started"
        return self.bus

    # ------------------------------------------------------------------ the log
    def log_decisions(self, events: Sequence[Event]) -> None:
        if not self._bus().publish_nowait(events):
            return  # the broker is unavailable: served, not logged
        for event in events:
            self._recent[event.event_id] = event.key
        while len(self._recent) > RECENT_DECISIONS:
            self._recent.popitem(last=False)

    def log(self, event: Event) -> bool:
        self._publish(event)
        return True  # the workers drop a repeated event id

    def _publish(self, event: Event) -> None:
        try:
            self._bus().publish([event])
        except KafkaError as exc:  # not acknowledged; the client sends it again
            raise Unavailable(f"the Kafka broker does not answer: {exc}") from None

    def log_applied(self, event: Event) -> None:
        """Publish a profile event and wait until the user's changelog record that holds it
        (its id among the events the user's book applied) reaches this replica."""
        self._publish(event)
        key, deadline = event.key, time.monotonic() + APPLY_TIMEOUT_S
        with self._changed:
            while not self._has_applied(key, event.event_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the workers did not apply the change in time")
                self._changed.wait(left)

    def _has_applied(self, key: str, event_id: str) -> bool:
        with self.view.lock:
            book = self.processor.books.get(key)
            return book is not None and event_id in book.seen

    def memory(self, key: str) -> UserMemory | None:
        return self.processor.memory.get(key)

    def resident(self, keys: Sequence[str]) -> None:
        pass  # a replica holds every user of the changelog (README, "Running on Kafka")

    def has_decision(self, tenant: str, user_id: str, decision_id: str) -> bool:
        key = f"{tenant}/{user_id}"
        if self._recent.get(decision_id) == key:
            return True
        if decision_id in self.processor.pending(key):
            return True
        if not self._bus().available:
            raise Unavailable("the Kafka broker does not answer")
        if not self._join_waits.acquire(blocking=False):
            return False  # enough requests wait already; this one is not held too
        try:
            deadline = time.monotonic() + JOIN_WAIT_S
            with self._changed:
                while decision_id not in self.processor.pending(key):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._changed.wait(left)
        finally:
            self._join_waits.release()
        return True

    def find_decision(self, tenant: str, user_id: str, decision_id: str) -> DecisionPayload | None:
        """From the user's pending decisions in the changelog: known here once a worker
        applied the decision and its record arrived, until it is settled and past the horizon."""
        return self.processor.pending_decision(f"{tenant}/{user_id}", decision_id)

    def knows(self, tenant: str, user_id: str) -> bool:
        key = f"{tenant}/{user_id}"
        return (
            key in self.engine.users
            or key in self.engine.pins
            or key in self.processor.books
            or key in self.processor.memory
        )

    def erase(self, tombstone: Event) -> None:
        """Publish the erasure and wait until the worker's tombstone reaches this replica."""
        key = tombstone.key
        with self._changed:
            self._records[key] = before = self._records.get(key, 0)
        try:
            self._publish(tombstone)
            self.engine.forget(key)
            deadline = time.monotonic() + DELETE_TIMEOUT_S
            with self._changed:
                while self._records.get(key, before) == before or self.processor.export_user(key):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("the workers did not apply the erasure in time")
                    self._changed.wait(left)
        finally:
            with self._changed:
                self._records.pop(key, None)
        self.engine.forget(key)  # in case a decision raced the erasure
        self.models.forget(key)
        scrub_files(self.data_dir, [key])

    # ------------------------------------------------------------------ reading
    def counters(self, key: str) -> dict[str, Any]:
        with self.view.lock:
            return self.processor.counters(key)

    def export_user(self, key: str) -> bytes | None:
        with self.view.lock:
            return self.processor.export_user(key)

    def user_events(self, tenant: str, user_id: str) -> list[dict[str, Any]]:
        return []  # the log lives in Kafka, under its retention

    # ------------------------------------------------------------------ health
    @property
    def alive(self) -> bool:
        thread = self.view._thread
        return thread is not None and thread.is_alive() and self.view.caught_up

    @property
    def error(self) -> BaseException | None:
        return None

    @property
    def writable(self) -> bool:
        return self.bus is not None and self.bus.available

    def lag(self) -> float:
        return 0.0 if self.view.caught_up else float("nan")

    def applied(self) -> int:
        return self.view.applied

    def rejected(self) -> int:
        return self.view.errors


class ReplicaModels(ModelHost):
    """Models for an API replica: it follows the models topic.

    The replica's users come from the workers' changelog; a new version gives it the arm
    embeddings and the cold-start prior, and the model's users it does not hold yet get their
    CF prior (the worker gives them the same one when they first show up).
    """

    def __init__(
        self,
        engine: Any,
        config: KafkaConfig,
        poll_interval_s: float,
        forgotten: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(engine, forgotten=forgotten)
        self.config = config
        self.feed = ModelFeed(config, on_model=self.install, poll_interval_s=poll_interval_s)

    def start(self) -> None:
        self.feed.start()
        if not self.feed.wait_caught_up(MODELS_TIMEOUT_S):
            raise TimeoutError(f"the models topic was not read within {MODELS_TIMEOUT_S:g} s")

    def stop(self) -> None:
        self.feed.close()

    def forget(self, key: str) -> None:
        """An erased user leaves the kept model too: the current version is published again
        without them (same version: nobody reinstalls it; restores read the scrubbed one), and
        the records before it, older versions included, are deleted."""
        model = self.feed.latest()
        if model is None or model.rows([key])[0] < 0:
            return
        scrubbed = model_to_bytes(model.without([key]))
        publish_model(self.config, MODEL_KEY.decode(), scrubbed, drop_older=True)

    def install(self, model: CFModel) -> None:
        try:
            check_catalog(model, self.engine.catalog)
        except CatalogMismatch as exc:  # raised, it would stop the feed's thread
            log.error("refused a CF model: %s", exc)
            return
        engine = self.engine
        with engine.lock:
            new = [u for u in model.user_ids.tolist() if u not in engine.users]
            warm_start(engine, model, users=new)
            cold = engine.cold_start
            assert isinstance(cold, ClusterPrior)
            pmap = PriorMap(engine, model, Priors())  # the shared model is as warm_start found it
            self.installed = Installed(model, pmap, cold, engine.shared.bias_column(), -1)
        log.info("installed CF model v%d", model.version)
