"""The service behind the HTTP API: decide, take feedback, read and change profiles, once.

Where events go and where served state comes from is the backend the bus URL names
(``streaming.bus``): the embedded store and learner, or an API replica on Kafka. The routes
stay thin: they translate HTTP to calls on ``Service``, whose methods raise ``NotFound`` or
``InputError`` for bad requests.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from api.idempotency import RecentDecisions, decision_id_for, event_id_for
from api.keys import KeyRing, KeyStore
from api.lanes import Choice, Lane, open_lanes
from api.metrics import Metrics
from api.settings import Settings
from streaming.bus import Backend
from streaming.events import Event, new_id
from streaming.memory import UserMemory
from streaming.notes import view as note_public
from streaming.payloads import ProfilePayload

DEV_TENANT = "dev"
log = logging.getLogger("attune")


class NotFound(LookupError):
    """An unknown user or decision (of this tenant)."""


class InputError(ValueError):
    """A request the engine rejects; ``field`` names the offending body field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Service:
    """Everything ``attune serve`` runs, built from settings; ``start``/``stop`` in lifespan.

    Each tenant is served by its catalog's lane (``api.lanes``); ``backend``, ``engine``,
    ``models`` and ``catalog`` are the server's own lane's, which every tenant without a
    catalog of its own uses.

    Parameters
    ----------
    settings : Settings
    backend : Backend, optional
        The server's lane's backend; defaults to the one ``settings.bus`` names.
    """

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.default, self._lanes = open_lanes(settings, backend)
        self.lanes = [self.default, *{id(x): x for x in self._lanes.values()}.values()]
        self.backend, self.engine = self.default.backend, self.default.engine
        self.models, self.catalog = self.default.models, self.default.catalog
        self.policy_version = self.default.policy_version
        self.metrics = Metrics()
        lanes = self.lanes
        self.metrics.bind(
            lag=lambda: sum(x.backend.lag() for x in lanes),
            applied=lambda: sum(x.backend.applied() for x in lanes),
            rejected=lambda: sum(x.backend.rejected() for x in lanes),
            users=lambda: sum(len(x.engine.users) for x in lanes),
            model_version=lambda: self.models.version,
        )
        path = self.backend.store_path
        self._keystore = KeyStore(path) if path is not None else None
        self.keys = KeyRing(settings.api_keys, settings.operator_keys, store=self._keystore)
        self.ready = False
        self.dev_key: str | None = None
        self.recent = RecentDecisions()

    def lane(self, tenant: str) -> Lane:
        """The lane serving ``tenant``: its own catalog's, or the server's."""
        return self._lanes.get(tenant, self.default)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Create the dev key if needed, recover or catch up state, warm the kernels."""
        if not self.keys:
            self._dev_keys()
        for lane in self.lanes:
            lane.backend.start()
        if self.settings.warm:
            for lane in self.lanes:
                lane.engine.warm()
            # Everything loaded so far (libraries, compiled kernels, recovered users) lives as
            # long as the process: moved out of the collector's sight, it no longer makes each
            # full collection (a pause on every thread) scan it.
            gc.collect()
            gc.freeze()
            # Nearly all of a request's containers die by reference count long before 10,000
            # allocations, so young-generation collections can be rare without holding more
            # memory (benchmarks/README.md has the measurement behind it).
            gc.set_threshold(10_000, *gc.get_threshold()[1:])
        self.ready = True

    def _dev_keys(self) -> None:
        """A local development key for tenant ``dev``: kept in the embedded store's file (so
        it survives restarts), in memory on Kafka (a deployment sets keys on every replica)."""
        self.dev_key = "attune-dev-" + secrets.token_urlsafe(24)
        if self._keystore is not None:
            self._keystore.add(DEV_TENANT, self.dev_key)
            self.keys.reload()
        else:
            self.keys = KeyRing({self.dev_key: DEV_TENANT}, self.settings.operator_keys)

    def stop(self) -> None:
        self.ready = False
        for lane in self.lanes:
            lane.backend.stop()
        if self._keystore is not None:
            self._keystore.close()

    def tenant_of_header(self, header: str) -> str | None:
        return self.keys.tenant_of_header(header)

    def is_operator(self, header: str) -> bool:
        return self.keys.is_operator(header)

    # ------------------------------------------------------------------ decisions
    def decide(self, tenant: str, body: Any) -> dict[str, Any]:
        [out] = self.decide_many([(tenant, body)])
        if isinstance(out, Exception):
            raise out
        return out

    def decide_many(self, requests: list[tuple[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Decide ``(tenant, body)`` requests in one engine call; per request, the response,
        the ``InputError`` that rejects it, or the error it alone ran into (the others are
        still decided: one request never fails its neighbours).

        A request with a ``request_id`` that was answered before gets that decision again,
        from this process's memory or the user's pending decisions (README.md, "Idempotent
        decisions"); the same one twice in a batch is decided once.
        """
        lanes = [self.lane(tenant) for tenant, _ in requests]
        for group in _by_lane(lanes, range(len(requests))):  # users back in memory first
            keys = [f"{requests[i][0]}/{requests[i][1].user_id}" for i in group]
            lanes[group[0]].backend.resident(keys)
        outs: list[dict[str, Any] | Exception | None] = [None] * len(requests)
        ids: list[str | None] = []
        first: dict[str, int] = {}  # decision id -> its first request in this batch
        fresh: list[int] = []
        for i, (tenant, body) in enumerate(requests):
            if body.request_id is None:
                ids.append(None)
                fresh.append(i)
                continue
            decision_id = decision_id_for(tenant, body.user_id, body.request_id)
            ids.append(decision_id)
            if decision_id in first:
                continue
            first[decision_id] = i
            outs[i] = self.recent.get(decision_id) or self._from_pending(tenant, body, decision_id)
            if outs[i] is None:
                fresh.append(i)
        for group in _by_lane(lanes, fresh):  # one engine call per lane
            made = self._decide_fresh(
                lanes[group[0]], [requests[i] for i in group], [ids[i] for i in group]
            )
            for i, out in zip(group, made, strict=True):
                outs[i] = out
        for i, did in enumerate(ids):  # a repeat within the batch gets its first's answer
            if outs[i] is None and did is not None:
                outs[i] = outs[first[did]]
        return [out for out in outs if out is not None]

    def _decide_fresh(
        self, lane: Lane, requests: list[tuple[str, Any]], ids: list[str | None]
    ) -> list[dict[str, Any] | Exception]:
        """New decisions of one lane, logged; ``ids`` are their decision ids (None: a random
        one)."""
        now = time.time()
        try:
            built = [lane.request(tenant, body, now) for tenant, body in requests]
            decisions = lane.engine.decide(built)
        except Exception as exc:
            if len(requests) > 1:
                # One bad request fails the batch: decide each alone to find it.
                return [
                    out
                    for request, decision_id in zip(requests, ids, strict=True)
                    for out in self._decide_fresh(lane, [request], [decision_id])
                ]
            if isinstance(exc, ValueError):
                return [_input_error(exc)]
            log.exception("deciding for tenant %r failed", requests[0][0])
            return [exc]
        events: list[Event] = []
        outs: list[dict[str, Any] | Exception] = []
        for (tenant, body), request, d, given in zip(requests, built, decisions, ids, strict=True):
            decision_id = given or new_id("d_")
            payload = lane.payload(d, decision_id, body, request.paused)
            events.append(Event.decision_of(decision_id, tenant, body.user_id, now, payload))
            self.metrics.count_decision(tenant)
            out = lane.response(decision_id, d.user_id, Choice.of(d), body)
            if given is not None:
                self.recent.put(decision_id, d.user_id, out)
            outs.append(out)
        try:
            lane.backend.log_decisions(events)
        except Exception:
            # The decisions stand: a decision missing from the log costs one observation
            # (its feedback gets 404), failing the requests would cost the turn.
            self.metrics.unlogged.inc(len(events))
            log.exception("logging %d decisions failed", len(events))
        return outs

    def _from_pending(self, tenant: str, body: Any, decision_id: str) -> dict[str, Any] | None:
        out = self.lane(tenant).from_pending(tenant, body, decision_id)
        if out is not None:
            self.recent.put(decision_id, f"{tenant}/{body.user_id}", out)
        return out

    # ------------------------------------------------------------------ feedback
    def feedback(self, tenant: str, body: Any) -> dict[str, Any]:
        """Log one feedback event durably; returns its event id and whether it was new."""
        self._check_decision(tenant, body.user_id, body.decision_id)
        if body.kind == "pairwise":
            if body.other_decision_id == body.decision_id:
                raise InputError("other_decision_id", "must differ from decision_id")
            self._check_decision(tenant, body.user_id, body.other_decision_id)
        payload = body.model_dump(exclude={"user_id", "event_id"})
        # Client ids get their own namespace, so one can never collide with a decision id.
        event_id = body.event_id or new_id()
        event = Event("feedback", "fb:" + event_id, tenant, body.user_id, time.time(), payload)
        if not self.lane(tenant).backend.log(event):
            self.metrics.duplicates.inc()
            return {"event_id": event_id, "status": "duplicate"}
        self.metrics.feedback.labels(tenant, body.kind).inc()
        return {"event_id": event_id, "status": "accepted"}

    def _check_decision(self, tenant: str, user_id: str, decision_id: str) -> None:
        if not self.lane(tenant).backend.has_decision(tenant, user_id, decision_id):
            raise NotFound(f"unknown decision {decision_id!r} for user {user_id!r}")

    # ------------------------------------------------------------------ profiles
    def memory(self, tenant: str, user_id: str) -> UserMemory | None:
        """The user's notes and pause, brought back first if the user left memory."""
        key, backend = f"{tenant}/{user_id}", self.lane(tenant).backend
        backend.resident([key])
        return backend.memory(key)

    def profile(self, tenant: str, user_id: str) -> dict[str, Any]:
        key, lane = f"{tenant}/{user_id}", self.lane(tenant)
        lane.backend.resident([key])
        try:
            prof = lane.engine.profile(key)
        except KeyError:
            raise NotFound(f"unknown user {user_id!r}") from None
        prof["user_id"] = user_id
        prof["evidence"] = lane.backend.counters(key)
        prof["cluster"] = lane.models.cluster(key)
        memory = lane.backend.memory(key)
        prof["personalization"] = "paused" if memory is not None and memory.paused else "active"
        prof["notes"] = [note_public(n, time.time()) for n in memory.notes] if memory else []
        return prof

    def update_profile(
        self,
        tenant: str,
        user_id: str,
        pins: dict[str, str | None],
        features: dict[str, Any] | None = None,
        personalization: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """Pins, declared user features and the pause of personalization (``"paused"`` or
        ``"active"``); all apply to the very next decision (the serving engine changes now,
        the log tells the learner and the workers; a pause is applied before this returns).

        With an ``idempotency_key`` the change's events get ids derived from it: a retried
        change is logged once, and a change the log already holds is not applied again."""
        lane = self.lane(tenant)
        _check_pins(lane, pins)
        features = features or {}
        _check_features(lane, features)
        key, backend, engine = f"{tenant}/{user_id}", lane.backend, lane.engine
        new = False
        backend.resident([key])
        for op, change in (("pin", {"pins": pins}), ("features", {"features": features})):
            if any(change.values()):
                payload = ProfilePayload(op, **change).to_dict()
                event_id = (
                    event_id_for(tenant, user_id, idempotency_key, op)
                    if idempotency_key
                    else new_id("p_")
                )
                event = Event("profile", event_id, tenant, user_id, time.time(), payload)
                new = backend.log(event) or new
        if personalization is not None:
            # Logged and applied by the learner (a duplicate id is logged once, so a retry
            # never undoes a newer change).
            op = "pause" if personalization == "paused" else "resume"
            event_id = (
                event_id_for(tenant, user_id, idempotency_key, op)
                if idempotency_key
                else new_id("p_")
            )
            payload = ProfilePayload(op).to_dict()
            event = Event("profile", event_id, tenant, user_id, time.time(), payload)
            backend.log_applied(event)
        if idempotency_key and not new:
            return self.profile(tenant, user_id)
        with engine.lock:
            engine.users.rows([key])
            engine.pin(key, pins)
            engine.set_user_features(key, features)
        return self.profile(tenant, user_id)

    def export(self, tenant: str, user_id: str) -> dict[str, Any]:
        key = f"{tenant}/{user_id}"
        profile = self.profile(tenant, user_id)
        raw = self.lane(tenant).backend.export_user(key)
        return {
            "user_id": user_id,
            "tenant": tenant,
            "profile": profile,
            "state": json.loads(raw) if raw else {},
            "events": self.lane(tenant).backend.user_events(tenant, user_id),
        }

    def delete(self, tenant: str, user_id: str) -> None:
        """Erase a user: engine state, pins, and their rows in the log; returns once the
        erasure is applied and durable."""
        backend = self.lane(tenant).backend
        if not backend.erases_unknown and not backend.knows(tenant, user_id):
            raise NotFound(f"unknown user {user_id!r}")
        payload = ProfilePayload("delete").to_dict()
        backend.erase(Event("profile", new_id("x_"), tenant, user_id, time.time(), payload))
        self.recent.forget(f"{tenant}/{user_id}")

    # ------------------------------------------------------------------ catalog
    def catalog_public(self, tenant: str | None = None) -> dict[str, Any]:
        """The catalog serving ``tenant`` (the server's own without one)."""
        return (self.default if tenant is None else self.lane(tenant)).catalog_public()


def _check_features(lane: Lane, features: dict[str, Any]) -> None:
    spec = lane.engine.context
    for name, value in features.items():
        declared = spec.declared(name)
        if declared is None or declared.scope != "user":
            raise InputError(f"features.{name}", f"{name}: not a declared user-scope feature")
        if value is not None:
            try:
                spec.validate({name: value})
            except ValueError as exc:
                raise InputError(f"features.{name}", str(exc)) from None


def _check_pins(lane: Lane, pins: dict[str, str | None]) -> None:
    for dim, level in pins.items():
        try:
            if level is None:
                lane.catalog.dimension(dim)
            else:
                lane.catalog.mask({dim: level})
        except (KeyError, ValueError) as exc:
            raise InputError(f"pins.{dim}", str(exc).strip("\"'")) from None


def _input_error(exc: ValueError) -> InputError:
    """Name the body field an engine error is about (its messages start with the field)."""
    message = str(exc)
    head = message.split(":", 1)[0].split(" ", 1)[0]
    field = (
        head
        if head.split(".")[0] in ("constraints", "features", "locale", "message", "user_id")
        else "body"
    )
    return InputError(field, message)


def _by_lane(lanes: list[Lane], indices: Iterable[int]) -> list[list[int]]:
    """``indices`` grouped by their request's lane, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i in indices:
        groups.setdefault(id(lanes[i]), []).append(i)
    return list(groups.values())
