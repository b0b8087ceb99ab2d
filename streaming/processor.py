"""Apply events to an Engine: the one code path of the embedded learner and the Kafka workers.

The processor keeps, per user key, a small book next to the engine's arrays: the decisions
still open for feedback (arm, context, time), the event ids already applied (so applying an
event twice is a no-op), counters of evidence, memory notes and the pause (``memory`` holds
what serving needs of both, ``streaming.memory``). A paused user's feedback is counted and
logged but nothing is learned from it, nor from feedback on a decision made while paused.
Moving a user's whole processing state, or a partition's shared model, as bytes (exports,
checkpoints, the Kafka changelog) is ``streaming.transfer``'s part of the class.

Learning is batched: feedback rows (and default rewards) are queued and handed to
``Engine.learn_arrays`` in one call per run of consecutive rows. The kernel applies rows in
order, so the result equals learning them one by one; the queue is flushed before anything that
reads or rewrites what it updates (a pairwise update, a profile operation, a new user's prior,
an export or import) and at the end of every ``apply``/``expire``/``apply_log``.

What a user's book holds is bounded: at most ``max_pending`` open decisions and ``max_seen``
event ids, and entries older than ``horizon_s`` (event time) are dropped as new ones arrive
(decisions only once they got feedback or the default reward). The consequence: feedback
arriving more than ``horizon_s`` after its decision is rejected (unknown decision), and an
event id resent after it fell out of the seen set is applied again.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from bandit import Engine
from streaming import notes as note_ops
from streaming.book import Book, recent_of
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.memory import UserMemory
from streaming.payloads import DecisionPayload
from streaming.transfer import StateTransfer


class Processor(StateTransfer):
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
    horizon_s : float, optional
        Event-time age past which seen ids and settled decisions are dropped; defaults to
        ten wait windows.
    combine_partitions : bool
        For a reader of several partitions' records (an API replica): the shared model served
        is the sum of every partition's contribution (``import_shared``), not the last one's.

    Examples
    --------
    >>> from bandit import Engine
    >>> p = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=60)
    >>> ctx = [1.0] + [0.0] * (p.engine.n_context - 1)
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
        horizon_s: float | None = None,
        combine_partitions: bool = False,
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
        self.horizon_s = 10 * self.wait_window_s if horizon_s is None else float(horizon_s)
        self._queue: list[tuple[int, int, np.ndarray, float, float, float]] = []
        self.books: dict[str, Book] = {}
        # Events not applied since the owner last took them (``take_rejected``), with the
        # reason; ``n_rejected`` counts them all.
        self.rejected: list[tuple[Event, str]] = []
        self.n_rejected = 0
        self._expiry: dict[int, list[tuple[float, str, str]]] = {}
        self._note_expiry: dict[int, list[tuple[float, str, str]]] = {}
        self.memory: dict[str, UserMemory] = {}  # read by the service without a lock
        self.combine_partitions = combine_partitions
        self._parts: dict[int, dict[str, dict[str, np.ndarray]]] = {}
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
            self._apply_one(event, partition, changed)
        self._flush()
        return changed

    def apply_log(
        self, events: Iterable[Event], *, partition: int, watermark: float
    ) -> tuple[set[str], float]:
        """Apply a partition's events in log order, expiring by event time on the way.

        Pending decisions expire at the first event of each new event-time second (as
        deterministic as checking before every event, and off the per-event path): the result
        does not depend on where the stream was cut into calls. Returns the changed keys and
        the new watermark (the largest event time seen).
        """
        changed: set[str] = set()
        next_check = math.floor(watermark) + 1.0
        for event in events:
            if event.ts > watermark:
                watermark = event.ts
                if watermark >= next_check:
                    next_check = math.floor(watermark) + 1.0
                    self._expire(watermark, partition, changed)
            self._apply_one(event, partition, changed)
        self._flush()
        return changed, watermark

    def expire(self, now: float, *, partition: int = 0) -> set[str]:
        """Give the default reward to decisions older than the wait window (event time) that
        got no feedback; returns the changed keys."""
        changed: set[str] = set()
        self._expire(now, partition, changed)
        self._flush()
        return changed

    def _apply_one(self, event: Event, partition: int, changed: set[str]) -> None:
        key = event.key
        book = self.books.get(key)
        if book is not None and event.event_id in book.seen:
            return
        try:
            self._handlers[event.kind](event, partition)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.reject(event, str(exc))
        book = self.books.get(key)
        if book is not None:
            self._mark_seen(book, event)
        changed.add(key)

    def reject(self, event: Event, reason: str) -> None:
        """Record an event that could not be applied (the owner dead-letters or logs it)."""
        self.rejected.append((event, reason))
        self.n_rejected += 1

    def take_rejected(self) -> list[tuple[Event, str]]:
        """The rejected events since the last call, which are then forgotten here."""
        out, self.rejected = self.rejected, []
        return out

    def _expire(self, now: float, partition: int, changed: set[str]) -> None:
        heap = self._expiry.get(partition, [])
        cutoff = now - self.wait_window_s
        reward, weight = self.default_reward, self.composer.default_weight
        while heap and heap[0][0] <= cutoff:
            _, key, decision_id = heapq.heappop(heap)
            book = self.books.get(key)
            entry = book.pending.get(decision_id) if book else None
            if book is None or entry is None or entry["feedback"] or entry["expired"]:
                continue
            entry["expired"] = True
            if not (book.paused or entry.get("paused")):
                self._learn(key, entry, reward, weight)
            book.counters["default_rewards"] += 1
            changed.add(key)
        self._expire_notes(now, partition, changed)

    def _expire_notes(self, now: float, partition: int, changed: set[str]) -> None:
        """Delete the notes expired at ``now`` (event time): retention of expired notes."""
        heap = self._note_expiry.get(partition, [])
        while heap and heap[0][0] <= now:
            _, key, _ = heapq.heappop(heap)
            book = self.books.get(key)
            if book is not None and note_ops.purge_expired(book.notes, now):
                self._remember(key, book)
                changed.add(key)

    def _learn(self, key: str, entry: dict[str, Any], reward: float, weight: float) -> None:
        """Queue a reward for a pending decision, with its decision-time context and score."""
        if not 0.0 <= reward <= 1.0:  # checked here: at the flush it would fail a whole batch
            raise ValueError(f"reward: expected a number in [0, 1], got {reward!r}")
        score = entry.get("user_score")
        self._queue.append(
            (
                self._row(key),
                entry["arm"],
                entry["context"],
                reward,
                weight,
                math.nan if score is None else score,
            )
        )

    def _flush(self) -> None:
        """Learn the queued rows in one kernel call (it applies them in order)."""
        if not self._queue:
            return
        rows, arms, contexts, rewards, weights, scores = zip(*self._queue, strict=True)
        self._queue = []
        self.engine.learn_arrays(
            np.array(rows, dtype=np.int64),
            np.array(arms, dtype=np.int64),
            np.array(contexts, dtype=np.float64),
            np.array(rewards, dtype=np.float64),
            np.array(weights, dtype=np.float64),
            np.array(scores, dtype=np.float64),
        )

    def _decision(self, event: Event, partition: int) -> None:
        p = event.decision
        arm = _arm(p.arm, self.engine.n_arms, "arm")
        context = _context(p.context, self.engine.n_context)
        # Encoded before anything changes: reasons orjson cannot encode (an integer past 64
        # bits in an event from the bus) reject the event whole.
        recent = recent_of(event.event_id, event.ts, p.strategy_id, p.locale, p.reasons)
        key = event.key
        self._ensure_user(key, context)
        users, row = self.engine.users, self._row(key)
        users.n_decisions[row] += 1
        users.last_seen[row] = max(users.last_seen[row], event.ts)
        book = self.books.setdefault(key, Book())
        if p.user_features:  # checked by the engine that decided; remembered as it did
            with self.engine.lock:
                known = self.engine.user_features.get(key, {})
                self.engine.user_features[key] = {**known, **p.user_features}
        pending = book.pending
        pending[event.event_id] = {
            "arm": arm,
            "context": context,
            "user_score": p.user_score,
            "ts": event.ts,
            "feedback": 0,
            "expired": False,
            **({"paused": True} if book.paused else {}),
            # what answering an idempotent retry from the changelog needs (an API replica)
            "propensity": p.propensity,
            "locale": p.locale,
            "seed": p.seed,
        }
        book.remember_decision(recent)
        horizon = event.ts - self.horizon_s
        while pending:  # oldest first: over the cap, or settled and past the horizon
            first = pending[next(iter(pending))]
            old = first["ts"] < horizon and (first["feedback"] or first["expired"])
            if len(pending) <= self.max_pending and not old:
                break
            del pending[next(iter(pending))]
        book.counters["decisions"] += 1
        heapq.heappush(self._expiry.setdefault(partition, []), (event.ts, key, event.event_id))

    def _feedback(self, event: Event, partition: int) -> None:
        p, key = event.feedback, event.key
        book = self.books.get(key)
        entry = book.pending.get(p.decision_id) if book else None
        if book is None or entry is None:
            raise ValueError(f"decision_id: unknown decision {p.decision_id!r}")
        learns = not (book.paused or entry.get("paused"))
        if p.kind == "pairwise":
            other = book.pending.get(str(p.other_decision_id))
            if other is None:
                raise ValueError(f"other_decision_id: unknown decision {p.other_decision_id!r}")
            if learns and not other.get("paused"):
                self._flush()
                self.engine.learn_pairwise([key], [entry["arm"]], [other["arm"]])
        else:
            reward, weight = self.composer.compose(p)
            if learns:
                self._learn(key, entry, reward, weight)
        entry["feedback"] += 1
        users, row = self.engine.users, self._row(key)
        users.last_seen[row] = max(users.last_seen[row], event.ts)
        book.counters["feedback_events"] += 1
        by_kind = book.counters["by_kind"]
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1

    def _profile(self, event: Event, partition: int) -> None:
        self._flush()  # rare; deletes and pins rewrite what queued rows update
        p, key = event.profile, event.key
        if p.is_delete:
            self.engine.forget(key)
            self.books.pop(key, None)
            self.memory.pop(key, None)
            return
        self._ensure_user(key, None)
        book = self.books.setdefault(key, Book())
        if p.op == "pin":
            self.engine.pin(key, p.pins)
        elif p.op == "unpin":
            self.engine.pin(key, dict.fromkeys(p.dimensions))
        elif p.op == "features":
            self.engine.set_user_features(key, p.features)
        elif p.op in ("pause", "resume"):
            book.paused = p.op == "pause"
            self._remember(key, book)
        elif p.op == "note_delete":
            note_ops.delete_note(book.notes, str(p.note_id))
            self._remember(key, book)
        else:
            note_ops.put_note(book.notes, p, event.ts)
            if p.ttl_s:
                expiry = (event.ts + p.ttl_s, key, str(p.note_id))
                heapq.heappush(self._note_expiry.setdefault(partition, []), expiry)
            self._remember(key, book)

    def _remember(self, key: str, book: Book) -> None:
        """Rebuild what serving reads of the user's notes and pause (``streaming.memory``)."""
        old = self.memory.get(key)
        if old is not None and old.same(book.notes, book.paused):
            return
        memory = UserMemory.of(book.notes, book.paused)
        if memory is None:
            self.memory.pop(key, None)
        else:
            self.memory[key] = memory

    # ------------------------------------------------------------------ reading
    def counters(self, key: str) -> dict[str, Any]:
        book = self.books.get(key)
        return json.loads(json.dumps(book.counters)) if book else dict(Book().counters)

    def notes(self, key: str, now: float) -> list[dict[str, Any]]:
        """The user's live notes at ``now``."""
        book = self.books.get(key)
        return [] if book is None else list(note_ops.live(book.notes, now))

    def pending(self, key: str) -> dict[str, dict[str, Any]]:
        book = self.books.get(key)
        return dict(book.pending) if book else {}

    def holds_decision(self, key: str, decision_id: str) -> bool:
        """Whether the user's book holds this decision (so the log has it); safe to call
        from another thread, like ``pending_decision``."""
        book = self.books.get(key)
        return book is not None and decision_id in book.pending

    def pending_decision(self, key: str, decision_id: str) -> DecisionPayload | None:
        """A decision the user's book still holds for feedback, as the payload to answer a
        repeat of it with; None when it is not held (or was held before entries kept the
        propensity). Another thread may call it while events are applied: it only reads two
        dicts and an entry, which is complete before it is inserted."""
        book = self.books.get(key)
        entry = book.pending.get(decision_id) if book is not None else None
        if entry is None or "propensity" not in entry:
            return None
        return DecisionPayload(
            arm=entry["arm"],
            context=entry["context"],
            decision_id=decision_id,
            propensity=entry["propensity"],
            locale=entry.get("locale"),
            seed=entry.get("seed"),
        )

    # ------------------------------------------------------------------ internals
    def _row(self, key: str) -> int:
        row = self.engine.users.ids.get(key)
        return int(self.engine.users.rows([key])[0]) if row is None else row

    def _ensure_user(self, key: str, context: np.ndarray | None) -> None:
        engine = self.engine
        if key in engine.users:
            return
        # A new user's prior depends on what the queued rows teach (the cold-start prior, the
        # tenant's empirical prior width): learn them first, so batching changes nothing.
        self._flush()
        row = engine.users.rows([key])
        if engine.cold_start is not None and context is not None:
            mean, precision = engine.cold_start(context[None, :])
            engine.users.set_prior(row, mean, precision, reset=True)

    def _mark_seen(self, book: Book, event: Event) -> None:
        seen = book.seen
        seen[event.event_id] = event.ts
        horizon = event.ts - self.horizon_s
        while seen:  # oldest first: over the cap, or past the horizon
            first = next(iter(seen))
            if len(seen) <= self.max_seen and seen[first] >= horizon:
                break
            del seen[first]


def _arm(value: Any, n_arms: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_arms:
        raise ValueError(f"{name}: expected an arm index in [0, {n_arms}), got {value!r}")
    return value


def _context(value: Any, n: int) -> np.ndarray:
    try:
        ctx = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("context: expected a list of numbers") from None
    if ctx.shape != (n,) or not np.isfinite(ctx).all():
        raise ValueError(f"context: expected {n} finite numbers")
    return ctx
