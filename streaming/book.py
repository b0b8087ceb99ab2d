"""A user's book: what the processor keeps about one user beside the engine's arrays.

The decisions still open for feedback, the event ids already applied (with their event times),
counters of evidence, memory notes (``streaming.notes``), whether personalization is paused,
the most recent decisions with their reasons (for the profile page), and ``extra`` (what a
processor subclass keeps per user, e.g. CF cluster evidence). ``document``/``from_document``
convert a book and the engine's record of the user to and from the document
``streaming.user_record`` encodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streaming import notes as note_ops

RECENT_DECISIONS = 10  # decisions kept per user with their reasons, newest last


# A recent decision is kept as a plain tuple of these fields, its reasons as a JSON string:
# made only of strings and numbers, the tuple stops being tracked by the garbage collector the
# first time the collector sees it (CPython untracks an exact tuple none of whose items is a
# container). As a dict holding a list of dicts, the ten entries of every resident user stayed
# tracked, twenty objects per user that every full collection walked. A string, not orjson's
# bytes, which held three times the memory (benchmarks/README.md has the measurements).
RECENT_FIELDS = ("decision_id", "ts", "strategy_id", "locale", "reasons")
Recent = tuple[str, float, "str | None", "str | None", str]


def recent_of(
    decision_id: str,
    ts: float,
    strategy_id: str | None,
    locale: str | None,
    reasons: Sequence[Mapping[str, Any]],
) -> Recent:
    """A recent decision's entry."""
    return (decision_id, ts, strategy_id, locale, orjson.dumps(reasons).decode())


def _recent_document(entry: Recent, raw: bool) -> dict[str, Any]:
    doc: dict[str, Any] = dict(zip(RECENT_FIELDS, entry, strict=True))
    doc["reasons"] = orjson.Fragment(entry[4]) if raw else orjson.loads(entry[4])
    return doc


def _counters() -> dict[str, Any]:
    return {"decisions": 0, "feedback_events": 0, "default_rewards": 0, "by_kind": {}}


@dataclass
class Book:
    """One user's book (see the module docstring)."""

    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # event id -> ts, in applied order
    counters: dict[str, Any] = field(default_factory=_counters)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    recent: list[Recent] = field(default_factory=list)

    def remember_decision(self, entry: Recent) -> None:
        self.recent.append(entry)
        del self.recent[:-RECENT_DECISIONS]

    def document(
        self,
        engine: dict[str, Any] | None,
        pins: dict[str, str],
        features: dict[str, Any],
        *,
        raw: bool = False,
    ) -> dict[str, Any]:
        """The user's document: the book plus the engine's arrays, pins and features.

        ``raw``: for orjson to encode (the binary record, written for every changed user on
        each checkpoint or Kafka batch), the recent decisions' reasons stay the JSON they are
        kept as (``orjson.Fragment``) instead of being parsed only to be encoded again.
        """
        return {
            "engine": engine,
            "pins": pins,
            "features": features,
            "pending": self.pending,
            "seen": list(self.seen),
            "seen_ts": list(self.seen.values()),
            "counters": self.counters,
            "notes": self.notes,
            "paused": self.paused,
            "recent": [_recent_document(entry, raw) for entry in self.recent],
            "extra": self.extra,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Book:
        pending = doc["pending"]
        # Version 1 exports before seen_ts: date the ids by the newest decision held.
        newest = max((e["ts"] for e in pending.values()), default=0.0)
        seen_ts = doc.get("seen_ts") or [newest] * len(doc["seen"])
        return cls(
            pending=pending,
            seen=dict(zip(doc["seen"], seen_ts, strict=True)),
            counters=doc["counters"],
            notes=note_ops.upgrade(doc["notes"]),
            extra=doc.get("extra") or {},
            paused=bool(doc.get("paused", False)),
            recent=[
                recent_of(
                    e["decision_id"],
                    e["ts"],
                    e.get("strategy_id"),
                    e.get("locale"),
                    e.get("reasons") or [],
                )
                for e in doc.get("recent") or ()
            ],
        )
