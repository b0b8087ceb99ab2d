"""Typed answers of the HTTP API, mirroring ``api/schemas.py``'s ``XPublic`` models.

Frozen dataclasses built from the response JSON (``from_json``). Fields the client does not
know yet (a newer server's) are ignored, and every record keeps the JSON it came from as
``raw``, so nothing the server says is out of reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from api.client._shapes import shapes


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Strategy:
    id: str
    levels: Mapping[str, str]


@dataclass(frozen=True)
class Reason:
    kind: str
    text: str
    weight: float
    dimension: str | None = None
    level: str | None = None
    feature: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Reason:
        return cls(
            d["kind"], d["text"], d["weight"], d.get("dimension"), d.get("level"), d.get("feature")
        )


@dataclass(frozen=True)
class Directives:
    """What to hand the LLM this turn.

    ``openai`` and ``anthropic`` are ready requests for this turn's message without history;
    ``request(history=...)`` builds one with the product's conversation and system prompt
    (``bandit/shapes.py`` has the rules; the server renders with the same code).
    """

    system_prompt: str
    messages: list[dict[str, Any]]
    params: Mapping[str, float | int]
    locale: str
    adapter: str | None
    openai: Mapping[str, Any]
    anthropic: Mapping[str, Any]
    message: str = ""  # the user's message the decision was asked for
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any], message: str = "") -> Directives:
        return cls(
            d["system_prompt"],
            list(d["messages"]),
            dict(d["params"]),
            d["locale"],
            d.get("adapter"),
            d.get("openai", {}),
            d.get("anthropic", {}),
            message,
            d,
        )

    def request(
        self,
        history: Iterable[Mapping[str, Any]] = (),
        *,
        shape: str = "openai",
        system: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of this turn's LLM call in ``shape`` ("openai",
        "anthropic" or "responses"), the product's ``history`` and ``system`` prompt merged
        in; ``message`` defaults to the one the decision was asked for."""
        text = self.message if message is None else message
        return shapes.chat_request(
            self.system_prompt, self.params, text, history, shape=shape, system=system
        )

    def generation(self, shape: str = "openai") -> dict[str, Any]:
        """The generation parameters named as ``shape``'s API names them."""
        return shapes.generation_params(self.params, shape)


@dataclass(frozen=True)
class Decision:
    """``DecisionPublic``: the strategy for one turn, and what the product needs to log it."""

    decision_id: str
    strategy: Strategy
    directives: Directives
    propensity: float
    explanation: tuple[Reason, ...]
    policy: Mapping[str, str]
    seed: int | None
    request_id: str | None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any], message: str = "") -> Decision:
        return cls(
            d["decision_id"],
            Strategy(d["strategy"]["id"], dict(d["strategy"]["levels"])),
            Directives.from_json(d["directives"], message),
            d["propensity"],
            tuple(Reason.from_json(r) for r in d["explanation"]),
            dict(d["policy"]),
            d.get("seed"),
            d.get("request_id"),
            d,
        )


@dataclass(frozen=True)
class FeedbackReceipt:
    """``FeedbackPublic``: ``status`` is ``accepted``, or ``duplicate`` when attune already
    had this ``event_id`` (after a retry: the earlier attempt landed)."""

    event_id: str
    status: str
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FeedbackReceipt:
        return cls(d["event_id"], d["status"], d)


@dataclass(frozen=True)
class Preference:
    preferred: str
    confidence: float
    levels: Mapping[str, Mapping[str, float]]  # level -> {"score", "sd"}


@dataclass(frozen=True)
class Evidence:
    feedback_events: int
    decisions: int
    default_rewards: int
    by_kind: Mapping[str, int]


@dataclass(frozen=True)
class Profile:
    """``ProfilePublic``: what attune learned about a user, their pins and evidence."""

    user_id: str
    preferences: Mapping[str, Preference]
    pins: Mapping[str, str]
    features: Mapping[str, Any]
    evidence: Evidence
    last_seen: float | None
    cluster: int | None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Profile:
        ev = d["evidence"]
        return cls(
            d["user_id"],
            {
                dim: Preference(p["preferred"], p["confidence"], dict(p["levels"]))
                for dim, p in d["preferences"].items()
            },
            dict(d["pins"]),
            dict(d.get("features", {})),
            Evidence(
                ev["feedback_events"],
                ev["decisions"],
                ev.get("default_rewards", 0),
                dict(ev.get("by_kind", {})),
            ),
            d.get("last_seen"),
            d.get("cluster"),
            d,
        )


@dataclass(frozen=True)
class Export:
    """``ExportPublic``: everything attune stores about a user."""

    user_id: str
    tenant: str
    profile: Profile
    state: Mapping[str, Any]
    events: list[dict[str, Any]]
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Export:
        profile = Profile.from_json(d["profile"])
        return cls(d["user_id"], d["tenant"], profile, d["state"], list(d["events"]), d)


@dataclass(frozen=True)
class CatalogInfo:
    """``CatalogPublic``: the strategies of the catalog serving the key's tenant."""

    name: str
    version: int
    locales: tuple[str, ...]
    dimensions: Mapping[str, tuple[str, ...]]
    n_arms: int
    arms: tuple[str, ...]
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CatalogInfo:
        dims = {k: tuple(v) for k, v in d["dimensions"].items()}
        return cls(
            d["name"], d["version"], tuple(d["locales"]), dims, d["n_arms"], tuple(d["arms"]), d
        )
