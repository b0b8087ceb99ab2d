"""A user's book: what the processor keeps about one user beside the engine's arrays.

The decisions still open for feedback, the event ids already applied (with their event times),
counters of evidence, profile notes, and ``extra`` (what a processor subclass keeps per user,
e.g. CF cluster evidence). ``document``/``from_document`` convert a book and the engine's
record of the user to and from the document ``streaming.user_record`` encodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streaming.payloads import ProfilePayload


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

    def set_note(self, note: ProfilePayload, ts: float) -> None:
        """Store a note; a newer version of the same note id supersedes the older one."""
        assert note.note_id is not None and note.text is not None  # checked by the payload
        old = self.notes.get(note.note_id)
        if old is None or old["ts"] <= ts:
            self.notes[note.note_id] = {
                "text": note.text,
                "ts": ts,
                "expires": ts + note.ttl_s if note.ttl_s else None,
                "version": (old["version"] + 1) if old else 1,
            }

    def live_notes(self, now: float) -> list[dict[str, Any]]:
        return [
            {"note_id": k, **v}
            for k, v in self.notes.items()
            if v["expires"] is None or v["expires"] > now
        ]

    def document(
        self, engine: dict[str, Any] | None, pins: dict[str, str], features: dict[str, Any]
    ) -> dict[str, Any]:
        """The user's document: the book plus the engine's arrays, pins and features."""
        return {
            "engine": engine,
            "pins": pins,
            "features": features,
            "pending": self.pending,
            "seen": list(self.seen),
            "seen_ts": list(self.seen.values()),
            "counters": self.counters,
            "notes": self.notes,
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
            notes=doc["notes"],
            extra=doc.get("extra") or {},
        )
