"""The service behind the HTTP API: one process, an embedded store, two engines, a learner.

Decisions are served from the *serving* engine; every decision, feedback and profile change
goes to the event log first; the learner thread applies the log to its own engine and copies
changed users into the serving engine. The routes stay thin: they translate HTTP to calls on
``Service``, whose methods raise ``NotFound`` or ``InputError`` for bad requests.
"""

from __future__ import annotations

import gc
import json
import math
import secrets
import time
from typing import Any

from api.metrics import Metrics
from api.models import EmbeddedModels, Models
from api.settings import Settings
from bandit import Catalog, Decision, DecisionRequest, Engine
from streaming.embedded import Learner
from streaming.events import Event, new_id
from streaming.models import ModelProcessor
from streaming.store import Store, event_rows_json, hash_key

DEV_TENANT = "dev"
DELETE_TIMEOUT_S = 10.0


class NotFound(LookupError):
    """An unknown user or decision (of this tenant)."""


class InputError(ValueError):
    """A request the engine rejects; ``field`` names the offending body field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Service:
    """Everything ``attune serve`` runs, built from settings; ``start``/``stop`` in lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        catalog = Catalog.from_toml(settings.catalog) if settings.catalog else Catalog.default()
        self.catalog = catalog
        self.store = Store(settings.db_path)
        params = settings.engine_params()
        self.engine = Engine(catalog, random_state=settings.random_state, **params)
        learner_engine = Engine(catalog, random_state=0, **params)
        self.processor = ModelProcessor(
            learner_engine,
            settings.rewards,
            wait_window_s=settings.wait_window_s,
            default_reward=settings.default_reward,
        )
        self.learner = Learner(
            self.store,
            self.processor,
            serving=self.engine,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            # Decisions run on the event loop, the learner on its own thread: applying its
            # batches a few events at a time (~0.3 ms) with a sleep between lets a request
            # wait that long for the GIL at most, not a whole batch's worth. The sleep is
            # longer than a slice, so while the learner catches up (or exports users for a
            # checkpoint) the request thread still gets most of the GIL: 0.2 ms gave it about a
            # third and p99 at 1,000 req/s of 7.6-11.3 ms in three runs, 1 ms 3.3-7.9 ms in
            # six, alternating on the same VM (benchmarks/bench_http.py).
            slice_size=8,
            slice_pause_s=0.001,
        )
        self.metrics = Metrics()
        self.metrics.bind(
            lag=self.learner.lag,
            applied=lambda: self.learner.applied_events,
            rejected=lambda: len(self.processor.rejected),
            users=lambda: len(self.engine.users),
        )
        self.models: Models = EmbeddedModels(
            self.engine,
            settings,
            self.metrics,
            learner=self.learner,
            processor=self.processor,
            store=self.store,
        )
        self.keys = {hash_key(k): t for k, t in settings.api_keys.items()}
        self.ready = False
        self.dev_key: str | None = None
        self.policy_version = f"{catalog.name}.v{catalog.version}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Recover state, create the dev key if needed, install the newest CF model, warm the
        kernels, start learning and watching for new models."""
        if not self.keys:
            stored = self.store.api_keys()
            if not stored:
                self.dev_key = "attune-dev-" + secrets.token_urlsafe(24)
                self.store.add_api_key(DEV_TENANT, self.dev_key)
                stored = self.store.api_keys()
            self.keys = stored
        self.learner.recover()
        self.models.start()
        if self.settings.warm:
            self.engine.warm()
            # Everything loaded so far (libraries, compiled kernels, recovered users) lives as
            # long as the process: moved out of the collector's sight, it no longer makes each
            # full collection (a pause on every thread) take tens to hundreds of milliseconds.
            gc.collect()
            gc.freeze()
            # A young-generation collection every 700 container allocations ran a few times
            # per second of load for about 1 ms each (measured at 1,000 decisions/s, 15 ms/s in
            # all); nearly all of a request's containers die by reference count well before
            # 10,000 allocations, so collections become rare without holding more memory.
            gc.set_threshold(10_000, *gc.get_threshold()[1:])
        self.learner.start()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self.models.stop()
        self.learner.stop()
        self.store.close()

    def tenant_for(self, key: str) -> str | None:
        return self.keys.get(hash_key(key))

    # ------------------------------------------------------------------ decisions
    def decide(self, tenant: str, body: Any) -> dict[str, Any]:
        [out] = self.decide_many([(tenant, body)])
        if isinstance(out, InputError):
            raise out
        return out

    def decide_many(self, requests: list[tuple[str, Any]]) -> list[dict[str, Any] | InputError]:
        """Decide ``(tenant, body)`` requests in one engine call; per request, the response or
        the ``InputError`` that rejects it (the others are still decided)."""
        try:
            decisions = self.engine.decide(
                [
                    DecisionRequest(
                        f"{tenant}/{body.user_id}",
                        body.message,
                        body.locale,
                        body.features,
                        body.constraints,
                    )
                    for tenant, body in requests
                ]
            )
        except ValueError as exc:
            if len(requests) == 1:
                return [_input_error(exc)]
            # One bad request fails the batch: decide each alone to find it.
            return [out for request in requests for out in self.decide_many([request])]
        now = time.time()
        events: list[Event] = []
        outs: list[dict[str, Any] | InputError] = []
        for (tenant, body), d in zip(requests, decisions, strict=True):
            decision_id = new_id("d_")
            payload = decision_payload(d, decision_id, body)
            events.append(Event("decision", decision_id, tenant, body.user_id, now, payload))
            self.metrics.count_decision(tenant)
            outs.append(self._response(d, decision_id, body))
        # Decisions go to the log by group commit without fsync (see streaming/store.py): a
        # lost decision costs one observation; a commit, let alone an fsync, per turn would
        # cost much of the latency budget.
        self.store.append_later(events)
        # No learner wake-up: a decision changes nothing until its feedback arrives, and the
        # learner's next poll (every 50 ms) picks it up without costing this request a wake-up.
        return outs

    def _response(self, d: Decision, decision_id: str, body: Any) -> dict[str, Any]:
        """The decision as the API answers it: strategy, directives, propensity, explanation."""
        directives = d.directives
        messages = (
            directives.messages(body.message) if body.message else directives.messages("")[:1]
        )
        return {
            "decision_id": decision_id,
            "strategy": {"id": d.strategy_id, "levels": dict(d.levels)},
            "directives": {
                "system_prompt": directives.system_prompt,
                "messages": messages,
                "params": dict(directives.params),
                "locale": directives.locale,
                "adapter": self.models.adapter(d.user_id),
            },
            "propensity": d.propensity,
            "explanation": [r.to_dict() for r in d.explanation],
            "policy": {"name": d.policy, "version": self.policy_version},
        }

    # ------------------------------------------------------------------ feedback
    def feedback(self, tenant: str, body: Any) -> dict[str, Any]:
        """Log one feedback event durably; returns its event id and whether it was new."""
        self._decision_of(tenant, body.user_id, body.decision_id)
        payload = body.model_dump(exclude={"user_id", "event_id"})
        if body.kind == "pairwise":
            self._check_pairwise(tenant, body)
        # Client ids get their own namespace, so one can never collide with a decision id.
        event_id = body.event_id or new_id()
        event = Event("feedback", "fb:" + event_id, tenant, body.user_id, time.time(), payload)
        [offset] = self.store.append([event], durable=True)
        self.learner.notify()
        if offset is None:
            self.metrics.duplicates.inc()
            return {"event_id": event_id, "status": "duplicate"}
        self.metrics.feedback.labels(tenant, body.kind).inc()
        return {"event_id": event_id, "status": "accepted"}

    def _check_pairwise(self, tenant: str, body: Any) -> None:
        if body.other_decision_id == body.decision_id:
            raise InputError("other_decision_id", "must differ from decision_id")
        self._decision_of(tenant, body.user_id, body.other_decision_id)

    def _decision_of(self, tenant: str, user_id: str, decision_id: str) -> Event:
        event = self.store.get_event(tenant, decision_id, kind="decision")
        if event is None or event.user_id != user_id:
            raise NotFound(f"unknown decision {decision_id!r} for user {user_id!r}")
        return event

    # ------------------------------------------------------------------ profiles
    def profile(self, tenant: str, user_id: str) -> dict[str, Any]:
        key = f"{tenant}/{user_id}"
        try:
            prof = self.engine.profile(key)
        except KeyError:
            raise NotFound(f"unknown user {user_id!r}") from None
        with self.learner.lock:
            counters = self.processor.counters(key)
        prof["user_id"] = user_id
        prof["evidence"] = counters
        prof["cluster"] = self.models.cluster(key)
        return prof

    def _check_pins(self, pins: dict[str, str | None]) -> None:
        for dim, level in pins.items():
            try:
                if level is None:
                    self.catalog.dimension(dim)
                else:
                    self.catalog.mask({dim: level})
            except (KeyError, ValueError) as exc:
                raise InputError(f"pins.{dim}", str(exc).strip("\"'")) from None

    def _log_profile(self, event: Event) -> None:
        """Make a profile command durable and hand it to whatever learns from the log."""
        self.store.append([event], durable=True)
        self.learner.notify()

    def _user_events(self, tenant: str, user_id: str) -> list[dict[str, Any]]:
        """The user's logged events, for their export."""
        return event_rows_json(self.store.iter_events(tenant=tenant, user_id=user_id))

    def update_pins(self, tenant: str, user_id: str, pins: dict[str, str | None]) -> dict:
        self._check_pins(pins)
        key = f"{tenant}/{user_id}"
        self._log_profile(
            Event(
                "profile", new_id("p_"), tenant, user_id, time.time(), {"op": "pin", "pins": pins}
            )
        )
        with self.engine.lock:  # pins apply to the very next decision, not after the learner
            self.engine.users.rows([key])
            self.engine.pin(key, pins)
        return self.profile(tenant, user_id)

    def export(self, tenant: str, user_id: str) -> dict[str, Any]:
        key = f"{tenant}/{user_id}"
        profile = self.profile(tenant, user_id)
        with self.learner.lock:
            raw = self.processor.export_user(key)
        return {
            "user_id": user_id,
            "tenant": tenant,
            "profile": profile,
            "state": json.loads(raw) if raw else {},
            "events": self._user_events(tenant, user_id),
        }

    def delete(self, tenant: str, user_id: str) -> None:
        """Erase a user: engine state, pins, and their rows in the log; waits until the
        learner has applied and saved the erasure."""
        key = f"{tenant}/{user_id}"
        if (
            key not in self.engine.users
            and key not in self.engine.pins
            and next(self.store.iter_events(tenant=tenant, user_id=user_id), None) is None
        ):
            raise NotFound(f"unknown user {user_id!r}")
        self.store.delete_user(tenant, user_id)
        tombstone = Event("profile", new_id("x_"), tenant, user_id, time.time(), {"op": "delete"})
        [offset] = self.store.append([tombstone], durable=True)
        self.engine.forget(key)
        self.learner.notify()
        if offset is not None and not self.learner.wait_for(
            offset, timeout=DELETE_TIMEOUT_S, checkpointed=True
        ):
            raise TimeoutError("the learner did not apply the erasure in time")
        self.engine.forget(key)  # in case a decision raced the erasure

    # ------------------------------------------------------------------ catalog
    def catalog_public(self) -> dict[str, Any]:
        c = self.catalog
        return {
            "name": c.name,
            "version": c.version,
            "locales": list(c.locales),
            "dimensions": {d.name: list(d.level_names) for d in c.dimensions},
            "n_arms": c.n_arms,
            "arms": list(c.arm_ids),
        }


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


def decision_payload(d: Decision, decision_id: str, body: Any) -> dict[str, Any]:
    """The decision event's payload: what the learner, audits and off-policy evaluation need."""
    return {
        "decision_id": decision_id,
        "arm": d.arm,
        "strategy_id": d.strategy_id,
        "levels": dict(d.levels),
        "propensity": d.propensity,
        "action_dist": d.action_dist.tolist(),
        "context": d.context.tolist(),
        # The user's decision-time score: the learner's backfitting step uses it instead of
        # re-factoring the posterior (None where the policy never computed one).
        "user_score": d.user_score if math.isfinite(d.user_score) else None,
        "policy": d.policy,
        "locale": d.directives.locale,
        "seed": d.seed,
        "audit": body.audit,
        "session_id": body.session_id,
    }
