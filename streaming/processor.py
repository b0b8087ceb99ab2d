"""Apply events to an Engine: the one code path of the embedded learner and the Kafka workers.

The processor keeps, per user key, a small book next to the engine's arrays: the decisions
still open for feedback (arm, context, time), the event ids already applied (so applying an
event twice is a no-op), counters of evidence, and profile notes. ``export_user`` and
``import_user`` move a user's whole processing state (book and engine arrays) as bytes, for
checkpoints and changelogs.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit import N_FEATURES, Engine, Feedback
from streaming.composer import RewardComposer
from streaming.events import Event

EXPORT_VERSION = 1


@dataclass
class _Book:
    """What the processor knows about one user besides the engine's arrays."""

    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    counters: dict[str, Any] = field(
        default_factory=lambda: {
            "decisions": 0,
            "feedback_events": 0,
            "default_rewards": 0,
            "by_kind": {},
        }
    )
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)


class Processor:
    """Applies decision, feedback and profile events to an engine, once each.

    Parameters
    ----------
    engine : Engine
    composer : RewardComposer
        Turns feedback into rewards.
    wait_window_s : float
        A decision without feedback this long after it was made (event time) gets the
        composer's default reward, once.
    default_reward : float, optional
        Overrides the composer's default reward.
    max_pending : int
        Decisions kept per user for joining feedback; older ones are dropped first.
    max_seen : int
        Event ids remembered per user for idempotence (the most recent ones).

    Examples
    --------
    >>> from bandit import Engine
    >>> p = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=60)
    >>> ctx = [1.0] + [0.0] * 15
    >>> d = Event("decision", "d1", "acme", "ana", 0.0, {"arm": 3, "context": ctx})
    >>> f = Event("feedback", "f1", "acme", "ana", 1.0, {"decision_id": "d1", "kind": "thumbs",
    ...           "value": "up"})
    >>> sorted(p.apply([d, f, f]))
    ['acme/ana']
    >>> p.counters("acme/ana")["feedback_events"]
    1
    """

    def __init__(
        self,
        engine: Engine,
        composer: RewardComposer,
        *,
        wait_window_s: float = 600.0,
        default_reward: float | None = None,
        max_pending: int = 512,
        max_seen: int = 4096,
    ) -> None:
        if not wait_window_s > 0:
            raise ValueError(f"wait_window_s must be > 0, got {wait_window_s}")
        if default_reward is not None and not 0.0 <= default_reward <= 1.0:
            raise ValueError(f"default_reward must be in [0, 1], got {default_reward}")
        self.engine = engine
        self.composer = composer
        self.wait_window_s = float(wait_window_s)
        self.default_reward = (
            composer.default_reward if default_reward is None else float(default_reward)
        )
        self.max_pending = max_pending
        self.max_seen = max_seen
        self.books: dict[str, _Book] = {}
        self.rejected: list[tuple[Event, str]] = []
        self._expiry: dict[int, list[tuple[float, str, str]]] = {}
        self._handlers = {
            "decision": self._decision,
            "feedback": self._feedback,
            "profile": self._profile,
        }

    # ------------------------------------------------------------------ applying
    def apply(self, events: Iterable[Event], *, partition: int = 0) -> set[str]:
        """Apply events in order; returns the keys of the users whose state changed.

        Events already applied are skipped. An event that cannot be applied (unknown decision,
        bad payload) is not raised: it goes to ``rejected`` as ``(event, reason)``.
        """
        changed: set[str] = set()
        for event in events:
            key = event.key
            book = self.books.get(key)
            if book is not None and event.event_id in book.seen:
                continue
            try:
                self._handlers[event.kind](event, partition)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                self.rejected.append((event, str(exc)))
            book = self.books.get(key)
            if book is not None:
                self._mark_seen(book, event.event_id)
            changed.add(key)
        return changed

    def expire(self, now: float, *, partition: int = 0) -> set[str]:
        """Give the default reward to decisions older than the wait window (event time) that
        got no feedback; returns the changed keys."""
        heap = self._expiry.get(partition, [])
        cutoff = now - self.wait_window_s
        changed: set[str] = set()
        reward, weight = self.default_reward, self.composer.default_weight
        while heap and heap[0][0] <= cutoff:
            _, key, decision_id = heapq.heappop(heap)
            book = self.books.get(key)
            entry = book.pending.get(decision_id) if book else None
            if book is None or entry is None or entry["feedback"] or entry["expired"]:
                continue
            entry["expired"] = True
            self._learn(key, entry, reward, weight)
            book.counters["default_rewards"] += 1
            changed.add(key)
        return changed

    def _learn(self, key: str, entry: dict[str, Any], reward: float, weight: float) -> None:
        """Learn a reward for a pending decision, with its decision-time context and score."""
        self.engine.learn(
            [
                Feedback(
                    key,
                    entry["arm"],
                    reward,
                    np.asarray(entry["context"]),
                    weight,
                    entry.get("user_score"),
                )
            ]
        )

    def _decision(self, event: Event, partition: int) -> None:
        p = event.payload
        arm = _arm(p.get("arm"), self.engine.n_arms, "arm")
        context = _context(p.get("context"))
        key = event.key
        self._ensure_user(key, context)
        row = self.engine.users.rows([key])[0]
        self.engine.users.n_decisions[row] += 1
        self.engine.users.last_seen[row] = max(self.engine.users.last_seen[row], event.ts)
        book = self.books.setdefault(key, _Book())
        score = p.get("user_score")
        book.pending[event.event_id] = {
            "arm": arm,
            "context": context.tolist(),
            "user_score": float(score) if isinstance(score, int | float) else None,
            "ts": event.ts,
            "feedback": 0,
            "expired": False,
        }
        while len(book.pending) > self.max_pending:
            book.pending.pop(next(iter(book.pending)))
        book.counters["decisions"] += 1
        heapq.heappush(self._expiry.setdefault(partition, []), (event.ts, key, event.event_id))

    def _feedback(self, event: Event, partition: int) -> None:
        p, key = event.payload, event.key
        book = self.books.get(key)
        entry = book.pending.get(str(p.get("decision_id"))) if book else None
        if book is None or entry is None:
            raise ValueError(f"decision_id: unknown decision {p.get('decision_id')!r}")
        kind = p.get("kind")
        if kind == "pairwise":
            other = book.pending.get(str(p.get("other_decision_id")))
            if other is None:
                raise ValueError(
                    f"other_decision_id: unknown decision {p.get('other_decision_id')!r}"
                )
            self.engine.learn_pairwise([key], [entry["arm"]], [other["arm"]])
        else:
            reward, weight = self.composer.compose(p)
            self._learn(key, entry, reward, weight)
        entry["feedback"] += 1
        row = self.engine.users.rows([key])[0]
        self.engine.users.last_seen[row] = max(self.engine.users.last_seen[row], event.ts)
        book.counters["feedback_events"] += 1
        by_kind = book.counters["by_kind"]
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def _profile(self, event: Event, partition: int) -> None:
        p, key, op = event.payload, event.key, event.payload.get("op")
        if op == "delete":
            self.engine.forget(key)
            self.books.pop(key, None)
            return
        if op not in ("pin", "unpin", "note"):
            raise ValueError(
                f"op: unknown profile operation {op!r}; allowed: pin, unpin, note, delete"
            )
        self._ensure_user(key, None)
        book = self.books.setdefault(key, _Book())
        if op == "pin":
            pins = p.get("pins")
            if not isinstance(pins, dict):
                raise ValueError("pins: expected an object of dimension -> level or null")
            self.engine.pin(key, pins)
        elif op == "unpin":
            dims = p.get("dimensions")
            if not isinstance(dims, list):
                raise ValueError("dimensions: expected a list of dimension names")
            self.engine.pin(key, dict.fromkeys(dims))
        else:
            note_id, text = p.get("note_id"), p.get("text")
            if not isinstance(note_id, str) or not isinstance(text, str):
                raise ValueError("note_id and text: expected strings")
            old = book.notes.get(note_id)
            if old is None or old["ts"] <= event.ts:  # newer supersedes older
                ttl = p.get("ttl_s")
                book.notes[note_id] = {
                    "text": text,
                    "ts": event.ts,
                    "expires": event.ts + ttl if ttl else None,
                    "version": (old["version"] + 1) if old else 1,
                }

    # ------------------------------------------------------------------ reading
    def counters(self, key: str) -> dict[str, Any]:
        book = self.books.get(key)
        return json.loads(json.dumps(book.counters)) if book else dict(_Book().counters)

    def notes(self, key: str, now: float) -> list[dict[str, Any]]:
        book = self.books.get(key)
        if book is None:
            return []
        return [
            {"note_id": k, **v}
            for k, v in book.notes.items()
            if v["expires"] is None or v["expires"] > now
        ]

    def pending(self, key: str) -> dict[str, dict[str, Any]]:
        book = self.books.get(key)
        return dict(book.pending) if book else {}

    # ------------------------------------------------------------------ state transfer
    def export_user(self, key: str) -> bytes | None:
        """A user's whole processing state as bytes, or None when nothing is held."""
        book = self.books.get(key)
        if book is None and key not in self.engine.users:
            return None
        book = book or _Book()
        arrays = self.engine.users.get(key) if key in self.engine.users else None
        doc = {
            "version": EXPORT_VERSION,
            "engine": {k: _pack(v) for k, v in arrays.items()} if arrays else None,
            "pins": self.engine.pins.get(key, {}),
            "pending": book.pending,
            "seen": list(book.seen),
            "counters": book.counters,
            "notes": book.notes,
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    def import_user(self, key: str, data: bytes | None, *, partition: int = 0) -> None:
        """Replace a user's state with an export (None erases the user)."""
        if data is None:
            self.engine.forget(key)
            self.books.pop(key, None)
            return
        doc = json.loads(data)
        if doc.get("version") != EXPORT_VERSION:
            raise ValueError(
                f"user state version {doc.get('version')!r} is not supported "
                f"(this attune reads version {EXPORT_VERSION})"
            )
        if doc["engine"] is not None:
            self.engine.users.put(key, {k: _unpack(v) for k, v in doc["engine"].items()})
        # The record's pins replace the user's pins: an unpin must reach replicas too.
        cleared: dict[str, str | None] = dict.fromkeys(self.engine.pins.get(key, {}))
        self.engine.pin(key, {**cleared, **doc["pins"]})
        book = _Book(
            pending=doc["pending"],
            seen=dict.fromkeys(doc["seen"]),
            counters=doc["counters"],
            notes=doc["notes"],
        )
        self.books[key] = book
        heap = self._expiry.setdefault(partition, [])
        for decision_id, entry in book.pending.items():
            if not entry["feedback"] and not entry["expired"]:
                heapq.heappush(heap, (entry["ts"], key, decision_id))

    def export_shared(self, partition: int = 0) -> bytes:
        """The shared interaction model. One engine serves all partitions of a process, so
        every partition exports the same weights; the changelog keeps them per partition."""
        return json.dumps({"version": EXPORT_VERSION, "W": _pack(self.engine.W)}).encode()

    def import_shared(self, partition: int, data: bytes) -> None:
        doc = json.loads(data)
        W = _unpack(doc["W"])
        if W.shape != self.engine.W.shape:
            raise ValueError(f"W: expected shape {self.engine.W.shape}, got {W.shape}")
        self.engine.W[:] = W

    # ------------------------------------------------------------------ internals
    def _ensure_user(self, key: str, context: np.ndarray | None) -> None:
        engine = self.engine
        if key in engine.users:
            return
        row = engine.users.rows([key])
        if engine.cold_start is not None and context is not None:
            mean, precision = engine.cold_start(context[None, :])
            engine.users.set_prior(row, mean, precision, reset=True)

    def _mark_seen(self, book: _Book, event_id: str) -> None:
        book.seen[event_id] = None
        while len(book.seen) > self.max_seen:
            book.seen.pop(next(iter(book.seen)))


def _arm(value: Any, n_arms: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_arms:
        raise ValueError(f"{name}: expected an arm index in [0, {n_arms}), got {value!r}")
    return value


def _context(value: Any) -> np.ndarray:
    try:
        ctx = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("context: expected a list of numbers") from None
    if ctx.shape != (N_FEATURES,) or not np.all(np.isfinite(ctx)):
        raise ValueError(f"context: expected {N_FEATURES} finite numbers")
    return ctx


def _pack(arr: np.ndarray) -> dict[str, Any]:
    arr = np.asarray(arr, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
    return {
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def _unpack(doc: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(doc["data"])
    return np.frombuffer(raw, dtype=np.dtype(doc["dtype"])).reshape(tuple(doc["shape"])).copy()
