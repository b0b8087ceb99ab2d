"""Lanes: what serves one catalog (its backend, engine and CF models), one per catalog.

Every tenant is served by the lane of its catalog (``Settings.for_tenant``): the server's own,
or the one a tenant names with ``[tenants.<name>] catalog``. Lanes share the process and
nothing else: each has its own store or topics, learner and models, so one catalog's decisions,
feedback and models never reach another's engine. A lane also turns a request into the
engine's request and a decision into the API's answer, since both depend on the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from api.settings import Settings, SettingsError
from bandit import Decision, DecisionRequest, Directives, Reason
from collab import adapter_id
from streaming.bus import Backend, open_backend
from streaming.payloads import DecisionPayload


class Lane:
    """One catalog's serving stack, built from the settings that name it.

    Parameters
    ----------
    settings : Settings
        The lane's settings (``Settings.for_tenant``): its catalog, data folder and bus.
    backend : Backend, optional
        Defaults to the one ``settings.bus`` names.
    """

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.catalog = settings.load_catalog()
        self.backend = backend or open_backend(settings.bus, settings.serving_options(self.catalog))
        self.engine = self.backend.engine
        self.models = self.backend.models
        self.policy_version = f"{self.catalog.name}.v{self.catalog.version}"

    def request(self, tenant: str, body: Any, now: float) -> DecisionRequest:
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

    def from_pending(self, tenant: str, body: Any, decision_id: str) -> dict[str, Any] | None:
        """The answer to a repeated request_id from the decision the backend holds pending,
        or None when it holds none (then the request is decided, under the same id)."""
        payload = self.backend.find_decision(tenant, body.user_id, decision_id)
        if payload is None:
            return None
        engine = self.engine
        try:
            arm = (
                engine.catalog.arm_index(payload.strategy_id)
                if payload.strategy_id
                else payload.arm
            )
            directives = engine.directives.compile(arm, payload.locale or body.locale)
        except (KeyError, ValueError):  # logged with a catalog this lane does not serve
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
        return self.response(decision_id, key, choice, body)

    def response(self, decision_id: str, key: str, c: Choice, body: Any) -> dict[str, Any]:
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
                "adapter": self.adapter(key),
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

    def adapter(self, key: str) -> str | None:
        """The user's group adapter id when ``adapter_template`` is set, else None."""
        template = self.settings.adapter_template
        return None if template is None else adapter_id(self.models.cluster(key), template=template)

    def payload(self, d: Decision, decision_id: str, body: Any, paused: bool) -> DecisionPayload:
        """The decision event's payload: what the learner, audits and off-policy evaluation
        need. ``user_score`` lets the learner's backfitting step skip re-factoring the
        posterior; the user-scope features the request sent are remembered by whoever applies
        it (not while the user paused personalization); the reasons, without their words, are
        kept for the profile page, which words them in its reader's locale."""
        context = self.engine.context
        remembered = context.user_scoped(body.features) if body.features and not paused else {}
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


def open_lanes(settings: Settings, backend: Backend | None = None) -> tuple[Lane, dict[str, Lane]]:
    """The server's lane (on ``backend`` if given) and, per tenant with a catalog of its own,
    that catalog's lane; tenants naming catalogs of one name share its lane."""
    default = Lane(settings, backend)
    by_name: dict[str, Lane] = {}
    by_tenant: dict[str, Lane] = {}
    for tenant in sorted(settings.tenant_catalogs):
        own = settings.for_tenant(tenant)
        if own is settings:
            continue
        catalog = own.load_catalog()
        lane = by_name.get(catalog.name)
        if lane is None:
            lane = by_name[catalog.name] = Lane(own)
        elif lane.catalog.identity() != catalog.identity():
            raise SettingsError(
                f"tenants.{tenant}.catalog: {own.catalog} differs from {lane.settings.catalog}, "
                f"though both are named {catalog.name!r}; give each a name of its own"
            )
        by_tenant[tenant] = lane
    return default, by_tenant


class Choice(NamedTuple):
    """What an answer says about the chosen strategy, from a decision or a pending one."""

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


def _unworded(reason: Reason) -> dict[str, Any]:
    """A reason without its text (and its empty fields): what re-wording it needs. Read from
    the tuple itself, not from ``to_dict``, which would build a dict only to filter it."""
    fields = zip(Reason._fields, reason, strict=True)
    return {k: v for k, v in fields if v is not None and k != "text"}
