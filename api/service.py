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
from collections.abc import Mapping
from typing import Any, NamedTuple

from api.idempotency import RecentDecisions, decision_id_for, event_id_for
from api.keys import KeyRing, KeyStore
from api.metrics import Metrics
from api.settings import Settings
from bandit import Decision, DecisionRequest, Directives, Engine, Reason
from collab import adapter_id
from streaming.bus import Backend, open_backend
from streaming.events import Event, new_id
from streaming.memory import UserMemory
from streaming.notes import view as note_public
from streaming.payloads import DecisionPayload, ProfilePayload

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

    Parameters
    ----------
    settings : Settings
    backend : Backend, optional
        Defaults to the one ``settings.bus`` names.
    """

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.catalog = settings.load_catalog()
        self.backend = backend or open_backend(settings.bus, settings.serving_options(self.catalog))
        self.engine = self.backend.engine
        self.models = self.backend.models
        self.metrics = Metrics()
        b = self.backend
        self.metrics.bind(
            lag=b.lag,
            applied=b.applied,
            rejected=b.rejected,
            users=lambda: len(self.engine.users),
            model_version=lambda: self.models.version,
        )
        path = self.backend.store_path
        self._keystore = KeyStore(path) if path is not None else None
        self.keys = KeyRing(settings.api_keys, settings.operator_keys, store=self._keystore)
        self.ready = False
        self.dev_key: str | None = None
        self.policy_version = f"{self.catalog.name}.v{self.catalog.version}"
        self.recent = RecentDecisions()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Create the dev key if needed, recover or catch up state, warm the kernels."""
        if not self.keys:
            self._dev_keys()
        self.backend.start()
        if self.settings.warm:
            self.engine.warm()
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
        self.backend.stop()
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
        self.backend.resident([f"{tenant}/{body.user_id}" for tenant, body in requests])
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
        if fresh:
            made = self._decide_fresh([requests[i] for i in fresh], [ids[i] for i in fresh])
            for i, out in zip(fresh, made, strict=True):
                outs[i] = out
        for i, did in enumerate(ids):  # a repeat within the batch gets its first's answer
            if outs[i] is None and did is not None:
                outs[i] = outs[first[did]]
        return [out for out in outs if out is not None]

    def _decide_fresh(
        self, requests: list[tuple[str, Any]], ids: list[str | None]
    ) -> list[dict[str, Any] | Exception]:
        """New decisions, logged; ``ids`` are their decision ids (None: a random one)."""
        now = time.time()
        try:
            built = [self._request(tenant, body, now) for tenant, body in requests]
            decisions = self.engine.decide(built)
        except Exception as exc:
            if len(requests) > 1:
                # One bad request fails the batch: decide each alone to find it.
                return [
                    out
                    for request, decision_id in zip(requests, ids, strict=True)
                    for out in self._decide_fresh([request], [decision_id])
                ]
            if isinstance(exc, ValueError):
                return [_input_error(exc)]
            log.exception("deciding for tenant %r failed", requests[0][0])
            return [exc]
        events: list[Event] = []
        outs: list[dict[str, Any] | Exception] = []
        for (tenant, body), request, d, given in zip(requests, built, decisions, ids, strict=True):
            decision_id = given or new_id("d_")
            payload = decision_payload(d, decision_id, body, self.engine, request.paused).to_dict()
            events.append(Event("decision", decision_id, tenant, body.user_id, now, payload))
            self.metrics.count_decision(tenant)
            out = self._response(decision_id, d.user_id, Choice.of(d), body)
            if given is not None:
                self.recent.put(decision_id, d.user_id, out)
            outs.append(out)
        try:
            self.backend.log_decisions(events)
        except Exception:
            # The decisions stand: a decision missing from the log costs one observation
            # (its feedback gets 404), failing the requests would cost the turn.
            self.metrics.unlogged.inc(len(events))
            log.exception("logging %d decisions failed", len(events))
        return outs

    def _request(self, tenant: str, body: Any, now: float) -> DecisionRequest:
        """The engine's request: the body, plus the notes retrieved for its message, the pause
        and the user's group (``streaming.memory``)."""
        key = f"{tenant}/{body.user_id}"
        memory = self.backend.memory(key)
        paused = memory is not None and memory.paused
        group = None
        if self.models.installed is not None and not paused:
            group = adapter_id(self.models.cluster(key))
        notes: tuple[tuple[str, str, float, bool], ...] = ()
        if memory is not None and not paused:
            hits = memory.retrieve(body.message, now)
            notes = tuple((h.note.note_id, h.note.text, h.score, h.note.pinned) for h in hits)
        return DecisionRequest(
            key,
            body.message,
            body.locale,
            body.features,
            body.constraints,
            notes=notes,
            paused=paused,
            group=group,
        )

    def _from_pending(self, tenant: str, body: Any, decision_id: str) -> dict[str, Any] | None:
        """The response to a repeated request_id from the decision the backend holds pending,
        or None when it holds none (then the request is decided, under the same id)."""
        payload = self.backend.find_decision(tenant, body.user_id, decision_id)
        if payload is None:
            return None
        engine = self._engine_of(tenant)
        try:
            arm = (
                engine.catalog.arm_index(payload.strategy_id)
                if payload.strategy_id
                else payload.arm
            )
            directives = engine.directives.compile(arm, payload.locale or body.locale)
        except (KeyError, ValueError):  # logged with a catalog this process does not serve
            return None
        key = f"{tenant}/{body.user_id}"
        try:
            explanation = engine.explain_logged(
                key, arm, payload.context, payload.action_dist, payload.propensity
            )
        except ValueError:  # the context has another width now (the declared features changed)
            explanation = ()
        choice = Choice(
            engine.catalog.arm_ids[arm],
            engine.catalog.levels_of(arm),
            payload.propensity,
            payload.seed,
            payload.policy or engine.policy.name,
            directives,
            explanation,
        )
        out = self._response(decision_id, key, choice, body)
        self.recent.put(decision_id, key, out)
        return out

    def _engine_of(self, tenant: str) -> Engine:
        """The engine (and so the catalog) serving ``tenant``'s decisions: one for all now."""
        return self.engine

    def _response(self, decision_id: str, key: str, c: Choice, body: Any) -> dict[str, Any]:
        """The decision as the API answers it: strategy, directives (also in OpenAI's and
        Anthropic's request shapes), propensity, explanation, seed."""
        directives = c.directives
        openai = directives.request(body.message, shape="openai")
        return {
            "decision_id": decision_id,
            "strategy": {"id": c.strategy_id, "levels": dict(c.levels)},
            "directives": {
                "system_prompt": directives.system_prompt,
                "messages": openai["messages"],
                "params": dict(directives.params),
                "locale": directives.locale,
                "adapter": self._adapter(key),
                "openai": openai,
                "anthropic": directives.request(body.message, shape="anthropic"),
                "notes": list(directives.notes),
            },
            "propensity": c.propensity,
            "explanation": [r.to_dict() for r in c.explanation],
            "policy": {"name": c.policy, "version": self.policy_version},
            "seed": c.seed,
            "request_id": body.request_id,
        }

    def _adapter(self, key: str) -> str | None:
        """The user's group adapter id when ``adapter_template`` is set, else None."""
        template = self.settings.adapter_template
        return None if template is None else adapter_id(self.models.cluster(key), template=template)

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
        if not self.backend.log(event):
            self.metrics.duplicates.inc()
            return {"event_id": event_id, "status": "duplicate"}
        self.metrics.feedback.labels(tenant, body.kind).inc()
        return {"event_id": event_id, "status": "accepted"}

    def _check_decision(self, tenant: str, user_id: str, decision_id: str) -> None:
        if not self.backend.has_decision(tenant, user_id, decision_id):
            raise NotFound(f"unknown decision {decision_id!r} for user {user_id!r}")

    # ------------------------------------------------------------------ profiles
    def memory(self, tenant: str, user_id: str) -> UserMemory | None:
        """The user's notes and pause, brought back first if the user left memory."""
        key = f"{tenant}/{user_id}"
        self.backend.resident([key])
        return self.backend.memory(key)

    def profile(self, tenant: str, user_id: str) -> dict[str, Any]:
        key = f"{tenant}/{user_id}"
        self.backend.resident([key])
        try:
            prof = self.engine.profile(key)
        except KeyError:
            raise NotFound(f"unknown user {user_id!r}") from None
        prof["user_id"] = user_id
        prof["evidence"] = self.backend.counters(key)
        prof["cluster"] = self.models.cluster(key)
        memory = self.backend.memory(key)
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
        self._check_pins(pins)
        features = features or {}
        self._check_features(features)
        key = f"{tenant}/{user_id}"
        new = False
        self.backend.resident([key])
        for op, change in (("pin", {"pins": pins}), ("features", {"features": features})):
            if any(change.values()):
                payload = ProfilePayload(op, **change).to_dict()
                event_id = (
                    event_id_for(tenant, user_id, idempotency_key, op)
                    if idempotency_key
                    else new_id("p_")
                )
                event = Event("profile", event_id, tenant, user_id, time.time(), payload)
                new = self.backend.log(event) or new
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
            self.backend.log_applied(event)
        if idempotency_key and not new:
            return self.profile(tenant, user_id)
        with self.engine.lock:
            self.engine.users.rows([key])
            self.engine.pin(key, pins)
            self.engine.set_user_features(key, features)
        return self.profile(tenant, user_id)

    def _check_features(self, features: dict[str, Any]) -> None:
        spec = self.engine.context
        for name, value in features.items():
            declared = spec.declared(name)
            if declared is None or declared.scope != "user":
                raise InputError(f"features.{name}", f"{name}: not a declared user-scope feature")
            if value is not None:
                try:
                    spec.validate({name: value})
                except ValueError as exc:
                    raise InputError(f"features.{name}", str(exc)) from None

    def _check_pins(self, pins: dict[str, str | None]) -> None:
        for dim, level in pins.items():
            try:
                if level is None:
                    self.catalog.dimension(dim)
                else:
                    self.catalog.mask({dim: level})
            except (KeyError, ValueError) as exc:
                raise InputError(f"pins.{dim}", str(exc).strip("\"'")) from None

    def export(self, tenant: str, user_id: str) -> dict[str, Any]:
        key = f"{tenant}/{user_id}"
        profile = self.profile(tenant, user_id)
        raw = self.backend.export_user(key)
        return {
            "user_id": user_id,
            "tenant": tenant,
            "profile": profile,
            "state": json.loads(raw) if raw else {},
            "events": self.backend.user_events(tenant, user_id),
        }

    def delete(self, tenant: str, user_id: str) -> None:
        """Erase a user: engine state, pins, and their rows in the log; returns once the
        erasure is applied and durable."""
        if not self.backend.erases_unknown and not self.backend.knows(tenant, user_id):
            raise NotFound(f"unknown user {user_id!r}")
        payload = ProfilePayload("delete").to_dict()
        self.backend.erase(Event("profile", new_id("x_"), tenant, user_id, time.time(), payload))
        self.recent.forget(f"{tenant}/{user_id}")

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


class Choice(NamedTuple):
    """What a response says about the chosen strategy, from a decision or a pending one."""

    strategy_id: str
    levels: Mapping[str, str]
    propensity: float
    seed: int | None
    policy: str
    directives: Directives
    explanation: tuple[Reason, ...]

    @classmethod
    def of(cls, d: Decision) -> Choice:
        return cls(
            d.strategy_id, d.levels, d.propensity, d.seed, d.policy, d.directives, d.explanation
        )


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


def decision_payload(
    d: Decision, decision_id: str, body: Any, engine: Any, paused: bool = False
) -> DecisionPayload:
    """The decision event's payload: what the learner, audits and off-policy evaluation need.
    ``user_score`` lets the learner's backfitting step skip re-factoring the posterior; the
    user-scope features the request sent are remembered by whoever applies it (not while the
    user paused personalization); the reasons, without their words, are kept for the
    profile page, which words them in its reader's locale."""
    remembered = engine.context.user_scoped(body.features) if body.features and not paused else {}
    return DecisionPayload(
        decision_id=decision_id,
        arm=d.arm,
        strategy_id=d.strategy_id,
        levels=dict(d.levels),
        propensity=d.propensity,
        action_dist=d.action_dist.tolist(),
        context=d.context.tolist(),
        user_score=d.user_score,
        policy=d.policy,
        locale=d.directives.locale,
        seed=d.seed,
        audit=body.audit,
        session_id=body.session_id,
        user_features=remembered,
        reasons=[_unworded(r) for r in d.explanation],
    )


def _unworded(reason: Reason) -> dict[str, Any]:
    """A reason without its text (and its empty fields): what re-wording it needs."""
    return {k: v for k, v in reason.to_dict().items() if v is not None and k != "text"}
