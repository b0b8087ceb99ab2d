"""Typed payloads of the three event kinds, read from and written to an event's JSON payload.

An ``Event`` carries its payload as the JSON object it travels as; ``Event.decision``,
``Event.feedback`` and ``Event.profile`` parse it into one of these records (once, cached), and
producers build a record and store its ``to_dict()``. Parsing checks types and names the
offending field; what a value means (a reward's range, a pin's level) is checked where it is
used: the reward composer, the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

_EMPTY: Mapping[str, Any] = MappingProxyType({})  # a default no record can change
FEEDBACK_KINDS = ("thumbs", "rating", "reward", "implicit", "pairwise")
PROFILE_OPS = ("pin", "unpin", "note", "note_delete", "pause", "resume", "features", "delete")
NOTE_SOURCES = ("user", "product", "inferred")


def _str(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {value!r}")
    return value


def _opt_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return None if value is None else _str(doc, name)


_DECISION_STRINGS = ("decision_id", "strategy_id", "policy", "locale", "session_id")


def _optional_strings(doc: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """Each of ``names`` is absent, None or a string; else ValueError naming it."""
    for name in names:
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")


def _number(doc: Mapping[str, Any], name: str) -> float:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return float(value)


class DecisionPayload(NamedTuple):
    """A served strategy: what feedback joins on and what off-policy evaluation needs.

    ``context`` is the request's feature vector, ``action_dist`` the distribution the arm was
    drawn from and ``propensity`` the arm's probability in it; ``user_score`` is the user's
    decision-time score of the arm (None where the policy computed none).
    """

    arm: int
    context: Sequence[float]
    decision_id: str | None = None
    propensity: float = 1.0
    action_dist: Sequence[float] = ()
    strategy_id: str | None = None
    levels: Mapping[str, str] = _EMPTY
    user_score: float | None = None
    policy: str | None = None
    locale: str | None = None
    seed: int | None = None
    audit: Mapping[str, Any] = _EMPTY
    session_id: str | None = None
    user_features: Mapping[str, Any] = _EMPTY
    reasons: Sequence[Mapping[str, Any]] = ()  # the explanation, without its words

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DecisionPayload:
        get = doc.get
        arm, context = get("arm"), get("context")
        if isinstance(arm, bool) or not isinstance(arm, int) or arm < 0:
            raise ValueError(f"arm: expected an arm index, got {arm!r}")
        if not isinstance(context, list):
            raise ValueError("context: expected a list of numbers")
        _optional_strings(doc, _DECISION_STRINGS)
        if "propensity" in doc:
            _number(doc, "propensity")
        user_features = get("user_features") or _EMPTY
        if not isinstance(user_features, Mapping):
            raise ValueError("user_features: expected an object of declared user features")
        reasons = get("reasons") or ()
        if not isinstance(reasons, list | tuple) or not all(isinstance(r, dict) for r in reasons):
            raise ValueError("reasons: expected a list of objects")
        return cls.from_own_dict(doc)

    @classmethod
    def from_own_dict(cls, doc: Mapping[str, Any]) -> DecisionPayload:
        """``from_dict`` without its checks, for a document ``to_dict`` wrote in this process:
        the service keeps it parsed on the event (``Event.decision_of``), so the embedded
        learner does not check again what the service has just built."""
        get = doc.get
        score, audit = get("user_score"), get("audit") or {}
        return cls(
            arm=doc["arm"],
            context=doc["context"],
            decision_id=get("decision_id"),
            propensity=float(doc["propensity"]) if "propensity" in doc else 1.0,
            action_dist=get("action_dist") or (),
            strategy_id=get("strategy_id"),
            levels=get("levels") or _EMPTY,
            user_score=float(score) if isinstance(score, int | float) else None,
            policy=get("policy"),
            locale=get("locale"),
            seed=get("seed"),
            audit=audit if isinstance(audit, dict) else _EMPTY,
            session_id=get("session_id"),
            user_features=get("user_features") or _EMPTY,
            reasons=get("reasons") or (),
        )

    def to_dict(self) -> dict[str, Any]:
        score = self.user_score
        return {
            "decision_id": self.decision_id,
            "arm": self.arm,
            "strategy_id": self.strategy_id,
            "levels": dict(self.levels),
            "propensity": self.propensity,
            "action_dist": list(self.action_dist),
            "context": list(self.context),
            "user_score": score if score is not None and math.isfinite(score) else None,
            "policy": self.policy,
            "locale": self.locale,
            "seed": self.seed,
            "audit": dict(self.audit),
            "session_id": self.session_id,
            **({"user_features": dict(self.user_features)} if self.user_features else {}),
            **({"reasons": list(self.reasons)} if self.reasons else {}),
        }


class FeedbackPayload(NamedTuple):
    """Feedback on a decision: ``kind`` with its fields (``value`` for thumbs, rating and
    reward; ``signals`` and ``dwell_ms`` for implicit; ``other_decision_id``, the response
    that lost, for pairwise)."""

    decision_id: str
    kind: str
    value: Any = None
    signals: tuple[Any, ...] = ()
    dwell_ms: Any = 0
    other_decision_id: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeedbackPayload:
        kind = doc.get("kind")
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(FEEDBACK_KINDS)}, got {kind!r}")
        signals = doc.get("signals", [])
        if not isinstance(signals, list | tuple):
            raise ValueError(f"signals must be a list, got {type(signals).__name__}")
        return cls(
            decision_id=str(doc.get("decision_id")),
            kind=kind,
            value=doc.get("value"),
            signals=tuple(signals),
            dwell_ms=doc.get("dwell_ms", 0) or 0,
            other_decision_id=_opt_str(doc, "other_decision_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision_id": self.decision_id, "kind": self.kind}
        if self.kind == "pairwise":
            out["other_decision_id"] = self.other_decision_id
        elif self.kind == "implicit":
            out["signals"] = list(self.signals)
            out["dwell_ms"] = self.dwell_ms
        else:
            out["value"] = self.value
        return out


class ProfilePayload(NamedTuple):
    """A profile command: ``pin`` (``pins``: level or None per dimension), ``unpin``
    (``dimensions``), ``note`` (a note or a new version of one: ``note_id``, ``text``, optional
    ``key``, ``source``, ``ttl_s``, ``pinned``; see ``streaming.notes``), ``note_delete``
    (``note_id``), ``pause`` and ``resume`` (personalization), ``features`` (declared user
    features: a value, or None to clear) or ``delete``."""

    op: str
    pins: Mapping[str, str | None] = _EMPTY
    features: Mapping[str, Any] = _EMPTY
    dimensions: tuple[str, ...] = ()
    note_id: str | None = None
    text: str | None = None
    ttl_s: float | None = None
    key: str | None = None
    source: str = "product"
    pinned: bool = False

    @property
    def is_delete(self) -> bool:
        return self.op == "delete"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ProfilePayload:
        op = doc.get("op")
        if op not in PROFILE_OPS:
            raise ValueError(
                f"op: unknown profile operation {op!r}; allowed: {', '.join(PROFILE_OPS)}"
            )
        pins = doc.get("pins", {})
        if op == "pin" and not isinstance(pins, dict):
            raise ValueError("pins: expected an object of dimension -> level or null")
        dims = doc.get("dimensions", [])
        if op == "unpin" and not isinstance(dims, list):
            raise ValueError("dimensions: expected a list of dimension names")
        if op in ("note", "note_delete"):
            _str(doc, "note_id")
        if op == "note":
            _note_fields(doc)
        ttl = doc.get("ttl_s")
        features = doc.get("features", {})
        if op == "features" and not isinstance(features, dict):
            raise ValueError("features: expected an object of feature -> value or null")
        return cls(
            op=op,
            pins=pins if isinstance(pins, dict) else _EMPTY,
            features=features if isinstance(features, dict) else _EMPTY,
            dimensions=tuple(dims) if isinstance(dims, list) else (),
            note_id=doc.get("note_id"),
            text=doc.get("text"),
            ttl_s=float(ttl) if isinstance(ttl, int | float) and ttl else None,
            key=doc.get("key"),
            source=doc.get("source") or "product",
            pinned=doc.get("pinned") is True,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.op == "pin":
            out["pins"] = dict(self.pins)
        elif self.op == "unpin":
            out["dimensions"] = list(self.dimensions)
        elif self.op == "note":
            out.update(
                note_id=self.note_id,
                text=self.text,
                ttl_s=self.ttl_s,
                key=self.key,
                source=self.source,
                pinned=self.pinned,
            )
        elif self.op == "note_delete":
            out["note_id"] = self.note_id
        elif self.op == "features":
            out["features"] = dict(self.features)
        return out


def _note_fields(doc: Mapping[str, Any]) -> None:
    """A note's fields have their types; ValueError naming the first that does not."""
    _str(doc, "text")
    _opt_str(doc, "key")
    source = doc.get("source")
    if source is not None and source not in NOTE_SOURCES:
        raise ValueError(f"source: expected one of {', '.join(NOTE_SOURCES)}, got {source!r}")
    ttl = doc.get("ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0):
        raise ValueError(f"ttl_s: expected a number of seconds >= 0, got {ttl!r}")
    if not isinstance(doc.get("pinned", False), bool):
        raise ValueError(f"pinned: expected true or false, got {doc.get('pinned')!r}")
