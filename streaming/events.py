"""Events: the one record that flows through the bus, keyed by ``tenant/user_id``.

Three kinds share one envelope: ``decision`` (a strategy was served), ``feedback`` (on a
decision) and ``profile`` (pin, unpin, note, delete). The payload travels as a JSON object;
``Event.decision``, ``Event.feedback`` and ``Event.profile`` read it as the typed records of
``streaming.payloads``. Events serialize to JSON (``to_bytes``) so any consumer, in any
language, can read the log.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streaming.payloads import DecisionPayload, FeedbackPayload, ProfilePayload

EVENT_VERSION = 1
KINDS = ("decision", "feedback", "profile")
MAX_ID = 256


class EventError(ValueError):
    """An event is malformed or has a version this code does not read."""


class _cached:
    """``functools.cached_property`` without the lock Python 3.11 takes on every access: an
    event is read by one thread, and the worker reads several of these per event."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn, self.name = fn, fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


def new_id(prefix: str = "") -> str:
    """A fresh random id, 128 bits from the OS's generator as 32 hex digits (the length of a
    uuid4's hex, without building a UUID object on every decision), optionally prefixed
    (``"d_"`` for decisions)."""
    return prefix + os.urandom(16).hex()


@dataclass(frozen=True)
class Event:
    """One event of the log.

    Attributes
    ----------
    kind : {"decision", "feedback", "profile"}
    event_id : str
        Unique within a tenant; applying an event twice is a no-op. A decision's event id is
        its ``decision_id``.
    tenant, user_id : str
        The user is scoped by the tenant; ``key`` joins them.
    ts : float
        Event time, seconds since the epoch.
    payload : dict
    version : int

    Examples
    --------
    >>> e = Event("feedback", "f1", "acme", "ana", 1.0, {"decision_id": "d1", "kind": "thumbs",
    ...           "value": "up"})
    >>> Event.from_bytes(e.to_bytes()) == e, e.key
    (True, 'acme/ana')
    """

    kind: str
    event_id: str
    tenant: str
    user_id: str
    ts: float
    payload: dict[str, Any] = field(default_factory=dict)
    version: int = EVENT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EventError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("event_id", "tenant", "user_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
                raise EventError(
                    f"{name} must be a string of 1 to {MAX_ID} characters, got {value!r}"
                )
        if "/" in self.tenant:
            raise EventError(f"tenant must not contain '/', got {self.tenant!r}")
        if (
            isinstance(self.ts, bool)
            or not isinstance(self.ts, int | float)
            or not math.isfinite(self.ts)
        ):
            raise EventError(f"ts must be a finite number of seconds, got {self.ts!r}")
        if not isinstance(self.payload, dict):
            raise EventError(f"payload must be an object, got {type(self.payload).__name__}")
        if self.version != EVENT_VERSION:
            raise EventError(
                f"event version {self.version!r} is not supported (this attune reads "
                f"version {EVENT_VERSION})"
            )

    @classmethod
    def decision_of(
        cls, event_id: str, tenant: str, user_id: str, ts: float, payload: DecisionPayload
    ) -> Event:
        """A decision event of ``payload``, its parsed payload already in place: a reader in
        this process (the embedded learner, which reads the events it was handed, not their
        rows) then does not parse and check again what the service has just built."""
        event = cls("decision", event_id, tenant, user_id, ts, payload.to_dict())
        event.__dict__["decision"] = DecisionPayload.from_own_dict(event.payload)
        return event

    @_cached  # read several times per event on the worker's path
    def key(self) -> str:
        """``tenant/user_id``: the engine's user id and the bus's message key."""
        return f"{self.tenant}/{self.user_id}"

    @_cached
    def decision(self) -> DecisionPayload:
        """The payload of a ``decision`` event; ValueError naming the field if malformed."""
        return DecisionPayload.from_dict(self._payload_of("decision"))

    @_cached
    def feedback(self) -> FeedbackPayload:
        """The payload of a ``feedback`` event; ValueError naming the field if malformed."""
        return FeedbackPayload.from_dict(self._payload_of("feedback"))

    @_cached
    def profile(self) -> ProfilePayload:
        """The payload of a ``profile`` event; ValueError naming the field if malformed."""
        return ProfilePayload.from_dict(self._payload_of("profile"))

    @property
    def is_delete(self) -> bool:
        """A ``profile`` event that erases the user."""
        return self.kind == "profile" and self.payload.get("op") == "delete"

    def _payload_of(self, kind: str) -> dict[str, Any]:
        if self.kind != kind:
            raise ValueError(f"kind: a {self.kind} event has no {kind} payload")
        return self.payload

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "event_id": self.event_id,
            "tenant": self.tenant,
            "user_id": self.user_id,
            "ts": self.ts,
            "payload": self.payload,
            "version": self.version,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(
            self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """Build an event from a decoded dict; unknown extra fields are ignored."""
        if not isinstance(data, dict):
            raise EventError(f"an event must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("kind", "event_id", "tenant", "user_id", "ts") if k not in data]
        if missing:
            raise EventError(f"event lacks field {missing[0]!r}")
        return cls(
            kind=data["kind"],
            event_id=data["event_id"],
            tenant=data["tenant"],
            user_id=data["user_id"],
            ts=data["ts"],
            payload=data.get("payload", {}),
            version=data.get("version", EVENT_VERSION),
        )

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Event:
        try:
            data = orjson.loads(raw)  # faster than json.loads on decisions (their float lists)
        except orjson.JSONDecodeError as exc:
            raise EventError(f"event is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def split_key(key: str) -> tuple[str, str]:
    """``"tenant/user"`` -> ``("tenant", "user")``; user ids may themselves contain '/'."""
    tenant, sep, user_id = key.partition("/")
    if not sep or not tenant or not user_id:
        raise ValueError(f"key must look like 'tenant/user_id', got {key!r}")
    return tenant, user_id
