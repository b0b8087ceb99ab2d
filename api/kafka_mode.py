"""``attune serve --bus kafka://...``: an API replica over Kafka.

The replica publishes decisions, feedback and profile commands to the events topic and serves
decisions and profiles from the user state it materializes from the compacted changelog that
``attune worker`` processes write. Replicas keep no state of their own, so any number can run
side by side behind a load balancer.

Differences from the embedded mode, by design:

- Feedback is accepted once it is durable on Kafka (202); the worker joins it to its decision
  and drops repeated event ids, so a resent feedback is ``accepted`` here and counted once
  there.
- A decision made by another replica is known here once its changelog record arrives; feedback
  that races ahead of it waits up to ``JOIN_WAIT_S`` for it.
- Exports carry profile and state; the raw events stay in Kafka (retention applies).
- CF models come from the models topic (``api.models.ReplicaModels``): a new version gives
  the replica its arm embeddings and cold-start prior; user state stays the workers'.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from api.metrics import Metrics
from api.models import ReplicaModels
from api.service import (
    DEV_TENANT,
    InputError,
    NotFound,
    Service,
    _input_error,
    decision_payload,
)
from api.settings import Settings
from bandit import Catalog, DecisionRequest, Engine
from streaming.changelog import ChangelogMaterializer
from streaming.events import Event, new_id
from streaming.kafka_bus import KafkaBus, KafkaConfig
from streaming.models import ModelProcessor
from streaming.store import hash_key

JOIN_WAIT_S = 5.0
DELETE_TIMEOUT_S = 15.0
RECENT_DECISIONS = 100_000


class _ChangelogStatus:
    """What ``/readyz`` and the metrics read (the embedded mode's learner has the same)."""

    def __init__(self, view: ChangelogMaterializer) -> None:
        self.view = view
        self.lock = view.lock
        self.error: BaseException | None = None

    @property
    def alive(self) -> bool:
        thread = self.view._thread
        return thread is not None and thread.is_alive() and self.view.caught_up

    @property
    def applied_events(self) -> int:
        return self.view.applied

    def lag(self) -> float:
        return 0.0 if self.view.caught_up else float("nan")


class KafkaService(Service):
    """The API's service in Kafka mode (see the module docstring).

    Parameters
    ----------
    settings : Settings
    bus_url : str
        ``kafka://host:port?prefix=...``.
    """

    def __init__(self, settings: Settings, bus_url: str) -> None:
        # Not Service.__init__: there is no SQLite store and no learner in this mode.
        self.settings = settings
        self.config = KafkaConfig.from_url(bus_url)
        catalog = Catalog.from_toml(settings.catalog) if settings.catalog else Catalog.default()
        self.catalog = catalog
        self.engine = Engine(
            catalog, random_state=settings.random_state, **settings.engine_params()
        )
        # The view applies changelog records to the serving engine under the engine's own lock,
        # so a decision never sees half of a user's record.
        self.processor = ModelProcessor(
            self.engine,
            settings.rewards,
            wait_window_s=settings.wait_window_s,
            default_reward=settings.default_reward,
        )
        self.view = ChangelogMaterializer(
            self.config, self.processor, lock=self.engine.lock, on_apply=self._on_apply
        )
        self.learner = _ChangelogStatus(self.view)  # type: ignore[assignment]
        self.bus: KafkaBus | None = None
        self.metrics = Metrics()
        self.metrics.bind(
            lag=self.learner.lag,
            applied=lambda: self.view.applied,
            rejected=lambda: self.view.errors,
            users=lambda: len(self.engine.users),
        )
        self.models = ReplicaModels(self.engine, settings, self.metrics, self.config)
        self.keys = {hash_key(k): t for k, t in settings.api_keys.items()}
        self.ready = False
        self.dev_key: str | None = None
        self.policy_version = f"{catalog.name}.v{catalog.version}"
        self._recent: OrderedDict[str, str] = OrderedDict()  # decision id -> user key
        self._records: dict[str, int] = {}  # user key -> changelog records seen
        self._changed = threading.Condition()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self.keys:
            # Every replica would make its own key: fine for one replica on a laptop; a
            # deployment sets ATTUNE_API_KEYS (or [tenants]) on all of them.
            self.dev_key = "attune-dev-" + secrets.token_urlsafe(24)
            self.keys = {hash_key(self.dev_key): DEV_TENANT}
        self.bus = KafkaBus(self.config)
        self.view.start()
        if not self.view.wait_caught_up(120):
            raise TimeoutError("the changelog view did not catch up within 120 s")
        self.models.start()
        if self.settings.warm:
            self.engine.warm()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self.models.stop()
        self.view.close()
        if self.bus is not None:
            self.bus.close()

    def _on_apply(self, keys: set[str]) -> None:
        with self._changed:
            for key in keys:
                self._records[key] = self._records.get(key, 0) + 1
            self._changed.notify_all()

    def _publish(self, event: Event) -> None:
        assert self.bus is not None, "service not started"
        self.bus.publish([event])

    # ------------------------------------------------------------------ decisions, feedback
    def decide(self, tenant: str, body: Any) -> dict[str, Any]:
        out, event = self._decide(tenant, body)
        assert self.bus is not None, "service not started"
        self.bus.publish_nowait([event])
        self._recent[out["decision_id"]] = event.key
        while len(self._recent) > RECENT_DECISIONS:
            self._recent.popitem(last=False)
        return out

    def decide_many(self, requests: list[tuple[str, Any]]) -> list[dict[str, Any] | InputError]:
        """One ``decide`` each: ``Service.decide_many`` logs to the embedded store."""
        outs: list[dict[str, Any] | InputError] = []
        for tenant, body in requests:
            try:
                outs.append(self.decide(tenant, body))
            except InputError as exc:
                outs.append(exc)
        return outs

    def _decision_of(self, tenant: str, user_id: str, decision_id: str) -> Event:
        key = f"{tenant}/{user_id}"
        if self._recent.get(decision_id) == key:
            return Event("decision", decision_id, tenant, user_id, time.time(), {})
        deadline = time.monotonic() + JOIN_WAIT_S
        with self._changed:
            while decision_id not in self.processor.pending(key):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotFound(f"unknown decision {decision_id!r} for user {user_id!r}")
                self._changed.wait(left)
        return Event("decision", decision_id, tenant, user_id, time.time(), {})

    def feedback(self, tenant: str, body: Any) -> dict[str, Any]:
        self._decision_of(tenant, body.user_id, body.decision_id)
        if body.kind == "pairwise":
            self._check_pairwise(tenant, body)
        payload = body.model_dump(exclude={"user_id", "event_id"})
        event_id = body.event_id or new_id()
        self._publish(
            Event("feedback", "fb:" + event_id, tenant, body.user_id, time.time(), payload)
        )
        self.metrics.feedback.labels(tenant, body.kind).inc()
        return {"event_id": event_id, "status": "accepted"}

    def _decide(self, tenant: str, body: Any) -> tuple[dict[str, Any], Event]:
        """Decide with the materialized state; the response and the event to publish (the
        same payload as the embedded mode's decision events)."""
        key = f"{tenant}/{body.user_id}"
        try:
            [d] = self.engine.decide(
                [DecisionRequest(key, body.message, body.locale, body.features, body.constraints)]
            )
        except ValueError as exc:
            raise _input_error(exc) from None
        decision_id = new_id("d_")
        payload = decision_payload(d, decision_id, body)
        event = Event("decision", decision_id, tenant, body.user_id, time.time(), payload)
        self.metrics.decisions.labels(tenant).inc()
        return self._response(d, decision_id, body), event

    # ------------------------------------------------------------------ profiles
    def _log_profile(self, event: Event) -> None:
        self._publish(event)

    def _user_events(self, tenant: str, user_id: str) -> list[dict[str, Any]]:
        return []  # the log lives in Kafka, under its retention

    def delete(self, tenant: str, user_id: str) -> None:
        """Publish the erasure and wait until the worker's tombstone reaches this replica."""
        key = f"{tenant}/{user_id}"
        if key not in self.engine.users and key not in self.engine.pins:
            raise NotFound(f"unknown user {user_id!r}")
        with self._changed:
            before = self._records.get(key, 0)
        self._publish(
            Event("profile", new_id("x_"), tenant, user_id, time.time(), {"op": "delete"})
        )
        self.engine.forget(key)
        deadline = time.monotonic() + DELETE_TIMEOUT_S
        with self._changed:
            while self._records.get(key, 0) == before or self.processor.export_user(key):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the workers did not apply the erasure in time")
                self._changed.wait(left)
        self.engine.forget(key)  # in case a decision raced the erasure
