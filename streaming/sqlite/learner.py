"""The learner inside ``attune serve``: a thread that applies the event log to the model.

It reads the SQLite log by offset, applies events with a ``Processor`` to its own engine, and
copies each changed user into the serving engine, the way API replicas materialize the state
changelog on Kafka. User state and the offset it reflects are checkpointed together in one
transaction; after a crash, ``recover`` loads the checkpoint and replays the log from its
offset, skipping each user's events that their saved state already holds, so acknowledged
feedback is counted exactly once.

Users are loaded on demand: recovery loads the shared model and replays the log, bringing back
from their checkpointed records only the users the replayed events touch; the rest come back
on their next request or event (``load``), after ``streaming.sqlite.residency`` made idle
users leave memory (``evict``).

Checkpoints are incremental. A user whose feedback, profile or default reward changed is saved
at the next checkpoint. A user who only got decisions (most users, most of the time) is saved
within about ``catch_up_s``: each checkpoint saves the longest-waiting share of them, and the
checkpoint's replay offset stays before their first unsaved decision, so a crash replays those
decisions from the log instead. Saving every user a decision touched each second would stall
decisions for tens of milliseconds, the time to export them, once the users hold some history.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from bandit import Engine
from streaming.events import Event
from streaming.processor import Processor
from streaming.sqlite.checkpoints import Checkpoints
from streaming.sqlite.residency import Residency
from streaming.sqlite.store import Store

log = logging.getLogger(__name__)
EVICT_SLICE = 64  # users leaving memory per hold of the lock
# A paced checkpoint exports this many users per event a paced step applies per slice:
# exporting a user (copying its arrays and encoding them) costs a fraction of applying an
# event, and while a checkpoint runs the thread applies nothing, so the log waits.
EXPORTS_PER_EVENT = 4
BEHIND_SCALE = 4  # a paced step's slices are this much larger while a batch or more behind


class Learner:
    """Applies the store's log to a processor, in a background thread.

    Parameters
    ----------
    store : Store
    processor : Processor
        Owns the learner's engine.
    serving : Engine, optional
        The engine that serves decisions; changed users and the shared model are copied into
        it after each batch.
    checkpoint_interval_s : float
        How often changed user states and the offset are saved.
    catch_up_s : float
        About how long a user changed only by decisions waits to be saved; after a crash, up
        to this much of the log is replayed.
    expire_interval_s : float
        How often decisions past the wait window get their default reward.
    batch : int
        Events read from the log per step.
    poll_s : float
        How often the log is read for events nobody notified about (decisions).
    slice_size : int, optional
        The thread applies a batch this many events at a time (default: all at once) ...
    slice_pause_s : float
        ... sleeping this long between slices, so that the GIL goes to the requests.
    clock : callable
        Wall clock for the wait window (tests pass a fake one).
    residency : Residency, optional
        Which users are held in memory; without one, every user stays.
    evict_interval_s : float
        How often idle users are made to leave.
    """

    def __init__(
        self,
        store: Store,
        processor: Processor,
        *,
        serving: Engine | None = None,
        checkpoint_interval_s: float = 1.0,
        catch_up_s: float = 30.0,
        expire_interval_s: float = 1.0,
        batch: int = 2000,
        poll_s: float = 0.05,
        slice_size: int | None = None,
        slice_pause_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        residency: Residency | None = None,
        evict_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.checkpoints = Checkpoints(store)
        self.processor = processor
        self.serving = serving
        self.checkpoint_interval_s = checkpoint_interval_s
        self.catch_up_s = catch_up_s
        self.expire_interval_s = expire_interval_s
        self.batch = batch
        self.poll_s = poll_s
        self.slice_size = slice_size
        self.slice_pause_s = slice_pause_s
        self.clock = clock
        self.residency = residency
        self.evict_interval_s = evict_interval_s
        self.evicted = 0
        self._recovering = False
        self.lock = threading.RLock()  # guards the processor; API reads take it too
        self.offset = 0
        self.checkpointed = 0
        self.applied_events = 0
        self._dirty: set[str] = set()  # saved at the next checkpoint
        self._shared_counts = np.zeros(0, dtype=np.int64)  # shared updates at the last sync
        # Users changed only by decisions since their last save -> the offset of the first
        # such decision; insertion order is offset order, so the first entry bounds the replay.
        self._behind: dict[str, int] = {}
        self._skip: dict[str, int] = {}  # during recovery: user -> offset their state holds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = self._last_expire = self._last_evict = time.monotonic()
        self.error: BaseException | None = None  # what stopped the thread
        self.store_error: BaseException | None = None  # the last failed save, while it fails

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> int:
        """Load the last checkpoint's shared model and replay the log after it, loading the
        users it touches (``load``); returns events replayed."""
        with self.lock:
            for partition, data in self.checkpoints.shared().items():
                self.processor.import_shared(partition, data)
            self.offset = self.checkpointed = self.checkpoints.offset()
            self._skip, self._recovering = {}, True
        try:
            replayed = 0
            while (n := self.step()) > 0:
                replayed += n
        finally:
            self._skip, self._recovering = {}, False
        if self.serving is not None:
            self.sync(set(), shared=True)  # users come when they are asked for
        self.checkpoint(full=True)
        return replayed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="attune-learner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save a final, full checkpoint (a restart then replays nothing)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.checkpoint(full=True)

    def notify(self) -> None:
        """Something was appended to the log: wake up now rather than at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def lag(self) -> int:
        """Events in the log not yet applied."""
        return max(0, self.store.last_offset() - self.offset)

    def wait_for(self, offset: int, *, timeout: float = 10.0, checkpointed: bool = False) -> bool:
        """Block until the learner applied (or also checkpointed) the log up to ``offset``."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while (self.checkpointed if checkpointed else self.offset) < offset:
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return False
                self._wake.set()
                self._progress.wait(min(left, 0.05))
        return True

    # ------------------------------------------------------------------ work
    def step(self, *, paced: bool = False) -> int:
        """Apply the next batch of the log; returns how many events it held (applied or
        skipped as already in the recovered state: a batch the recovered state holds entirely
        must not end the recovery).

        ``paced`` (the thread's steps): apply it in slices of ``slice_size`` events with a
        ``slice_pause_s`` sleep between them, so requests on other threads wait for the GIL
        at most one slice instead of a whole batch.
        """
        rows = self.store.read(self.offset, self.batch)
        if not rows:
            return 0
        size = self.slice_size if paced and self.slice_size else len(rows)
        if len(rows) == self.batch:
            # A full batch: more is waiting. Slices stay short, but fewer pauses let the
            # learner catch up: while behind, users it has not settled cannot leave memory,
            # the store keeps the recent events it has not read, and its books miss the
            # newest decisions.
            size *= BEHIND_SCALE
        for start in range(0, len(rows), size):
            if start:
                time.sleep(self.slice_pause_s)
            batch = rows[start : start + size]
            # Users who left memory come back before the lock is taken (``load`` reads their
            # records outside it): a read waits for the store, and requests that need the
            # lock (bringing users back for decisions, profiles) would wait with it.
            self._bring_back({e.key for _, e in batch})
            self._apply(batch)
        with self._progress:
            self._progress.notify_all()
        return len(rows)

    def _bring_back(self, keys: set[str]) -> None:
        if self.residency is not None:
            self.residency.touch(keys)  # before the read: see ``load``
        self.load(keys)

    def _apply(self, rows: list[tuple[int, Event]]) -> None:
        with self.lock:
            keys = {e.key for _, e in rows}
            self.load(keys)
            if self.residency is not None:
                self.residency.touch(keys)
            skip = self._skip  # only while recovering
            rows_to_apply = [r for r in rows if r[0] > skip.get(r[1].key, 0)] if skip else rows
            events = [e for _, e in rows_to_apply]
            changed = self.processor.apply(events)
            for event, reason in self.processor.take_rejected():  # counted by the processor
                log.info("learner: %s of %s not applied: %s", event.event_id, event.key, reason)
            self.offset = rows[-1][0]
            self.applied_events += len(events)
            learned = changed & {e.key for e in events if e.kind != "decision"}
            self._dirty |= learned
            for off, e in rows_to_apply:
                if e.kind == "decision" and e.key in changed and e.key not in self._dirty:
                    self._behind.setdefault(e.key, off)
            if self.serving is not None:
                # A decision event changes nothing the serving engine needs (it made the
                # decision): copying the user after each one would cost a sync per request.
                self.sync(learned)
        if any(e.is_delete for e in events):
            # An erasure must reach the disk now, not at the next tick, and fully: with nothing
            # left to replay, the tombstone can go too, and no decision that raced the erasure
            # can bring the user back after a crash.
            self.checkpoint(full=True)

    def expire(self) -> int:
        with self.lock:
            changed = self.processor.expire(self.clock())
            self._dirty |= changed
            if self.serving is not None:
                self.sync(changed)
        return len(changed)

    def checkpoint(self, *, full: bool = False, paced: bool = False) -> None:
        """Save changed users, the shared model and the offsets, in one transaction.

        Users changed only by decisions are saved in shares (see the module docstring), or
        all of them with ``full``. ``paced`` (the thread's checkpoints): export them in slices
        of ``slice_size * EXPORTS_PER_EVENT`` users with a ``slice_pause_s`` sleep between, as
        ``step`` does between slices of events.

        The lock is held while users are exported, not while the thread pauses or the store
        commits (an fsync): requests that bring users back or read profiles wait for it, and
        waited through both. That is safe because everything that changes a user's state
        runs on this thread (applying the log, expiry, eviction), except a model install,
        which marks the users it changed as behind again: those marks are kept.
        """
        size = (self.slice_size or 1) * EXPORTS_PER_EVENT if paced else 0
        with self.lock:
            behind = self._behind
            share = len(behind) if full else self._catch_up_share()
            keys = list(self._dirty.union(itertools.islice(behind, share)))
            marks = {key: behind.get(key) for key in keys}
            offset = self.offset
        states: dict[str, bytes | None] = {}
        step = size or len(keys) or 1  # unpaced: one slice
        for start in range(0, len(keys), step):
            if start:
                time.sleep(self.slice_pause_s)
            with self.lock:
                for key in keys[start : start + step]:
                    states[key] = self.processor.export_record(key)
        with self.lock:
            shared = {0: self.processor.export_shared(0)}
            # The first user still behind after this save bounds the replay. Nothing is
            # forgotten before the save commits: a failed one (a full disk) is retried whole.
            unsaved = next((o for k, o in behind.items() if k not in marks), None)
            replay_from = offset if unsaved is None else unsaved - 1
        self.checkpoints.save(states, shared, replay_from, applied=offset)
        with self.lock:
            for key, mark in marks.items():
                if behind.get(key) == mark:  # not marked again meanwhile (a model install)
                    behind.pop(key, None)
            self._dirty.difference_update(marks)
            self.checkpointed = offset
        self._last_checkpoint = time.monotonic()
        with self._progress:
            self._progress.notify_all()

    def _run(self) -> None:
        pause = self.poll_s
        try:
            while not self._stop.is_set():
                try:
                    n = self._tick()
                except sqlite3.Error as exc:
                    # The disk refuses a checkpoint: the state stays in memory (nothing is
                    # marked saved) and the next tick tries again, after a growing pause.
                    self.store_error = exc
                    log.warning("learner: saving failed, retrying: %s", exc)
                    pause = min(2.0, 2 * pause)
                    self._stop.wait(pause)
                    continue
                self.store_error, pause = None, self.poll_s
                if n < self.batch:
                    # Caught up: wait for a notify (feedback, profile changes) or the next poll
                    # rather than stepping again at once. Decisions (no notify) are then applied
                    # in batches per poll, not a few per step, each step's fixed cost taking
                    # the GIL from the requests.
                    self._wake.wait(self.poll_s)
        except BaseException as exc:  # surfaced by /healthz, /readyz and the next wait_for
            self.error = exc
            raise

    def _tick(self) -> int:
        """One round of the thread: a paced step, then expiry and a checkpoint when due."""
        self._wake.clear()  # before reading, so a notify from now on is not lost
        n = self.step(paced=True)
        now = time.monotonic()
        if now - self._last_expire >= self.expire_interval_s:
            self.expire()
            self._last_expire = now
        if (
            self._dirty or self._behind or self.checkpointed < self.offset
        ) and now - self._last_checkpoint >= self.checkpoint_interval_s:
            self.checkpoint(paced=self.slice_size is not None)
        if now - self._last_evict >= self.evict_interval_s:
            self.evict()
            self._last_evict = now
        return n

    # ------------------------------------------------------------------ residency
    def load(self, keys: Iterable[str]) -> list[str]:
        """Bring users this learner does not hold back from their checkpointed records;
        returns those loaded. While recovering, their saved offsets say which replayed events
        their records already hold.

        The records are read before the lock is taken: a read may wait for the store (another
        commit's fsync), and everything that needs the lock, this thread's learning included,
        would wait with it. A record read while its user is not held is their last state (a
        user leaves only once saved), and stays so while they are not used for
        ``Residency.min_idle_s`` (nobody else can bring them back, change them and see them
        leave sooner); callers mark them used first, and a read older than half of that is
        made again under the lock.
        """
        processor = self.processor

        def held(key: str) -> bool:
            return key in processor.books or key in processor.engine.users

        wanted = [key for key in dict.fromkeys(keys) if not held(key)]
        if not wanted:
            return []
        read_at = time.monotonic()
        found = self.checkpoints.states_and_offsets(wanted)
        loaded = []
        with self.lock:
            residency = self.residency
            if residency is not None and time.monotonic() - read_at > residency.min_idle_s / 2:
                found = self.checkpoints.states_and_offsets(wanted)
            for key, record in found.items():
                if held(key):
                    continue  # brought back meanwhile
                processor.import_user(key, record[0])
                if self._recovering:
                    self._skip[key] = record[1]
                loaded.append(key)
        return loaded

    def load_all(self) -> list[str]:
        """Bring back every user with a checkpointed record (a model install re-primes them
        all); they leave again once saved and idle."""
        with self.lock:
            held = self.processor.books.keys() | self.processor.engine.users.ids.keys()
            missing = [key for key, _ in self.checkpoints.state_offsets().items()]
            loaded = self.load(k for k in missing if k not in held)
            if self.residency is not None:
                self.residency.touch(loaded)
        return loaded

    def save_later(self, keys: Iterable[str]) -> None:
        """Users changed outside the log (a model install): saved within ``catch_up_s``, and
        held in memory until then."""
        with self.lock:
            for key in keys:
                self._behind.setdefault(key, self.offset + 1)

    def copy_to_serving(self, keys: Iterable[str]) -> None:
        """Give the serving engine these users as the learner holds them (record, pins and
        declared features)."""
        source, target = self.processor.engine, self.serving
        assert target is not None
        with self.lock, target.lock:
            for key in keys:
                if key in source.users:
                    target.users.put(key, source.users.get(key))
                if key in source.pins:
                    target.pins[key] = dict(source.pins[key])
                if key in source.user_features:
                    target.user_features[key] = dict(source.user_features[key])

    def evict(self, limit: int = 2000) -> int:
        """Let idle users leave both engines (see ``streaming.sqlite.residency``); returns
        how many left. A user with unsaved changes or an open decision stays."""
        residency = self.residency
        if residency is None:
            return 0
        n = 0
        leaving = residency.leaving()[:limit]
        # The lock once per slice of users, not per user: requests that load users or read
        # profiles want it too, and each acquisition may wait its turn behind them.
        for start in range(0, len(leaving), EVICT_SLICE):
            with self.lock:
                settled = [
                    (k, used)
                    for k, used in leaving[start : start + EVICT_SLICE]
                    if self._settled(k)
                ]
                with residency.releasing(settled) as keys:
                    self.processor.engine.forget_many(keys)
                    for key in keys:
                        self.processor.books.pop(key, None)
                        self.processor.memory.pop(key, None)  # notes, pause come back too
                    if self.serving is not None:
                        self.serving.forget_many(keys)
                    n += len(keys)
        self.evicted += n
        return n

    def _settled(self, key: str) -> bool:
        if key in self._dirty or key in self._behind:
            return False
        book = self.processor.books.get(key)
        return book is None or all(e["feedback"] or e["expired"] for e in book.pending.values())

    def _catch_up_share(self) -> int:
        """How many decision-only users this checkpoint saves: with users arriving at a
        steady rate, each then waits about ``catch_up_s``."""
        ticks = max(1.0, self.catch_up_s / self.checkpoint_interval_s)
        return math.ceil(len(self._behind) / ticks)

    def sync(self, keys: set[str], *, shared: bool = False) -> None:
        """Copy users, and the shared model, from the learner's engine to the serving one.

        The shared model is copied when it learned since the last copy (its per-tenant update
        counts moved), or always with ``shared``, for changes that do not count as updates (a
        recovery, a model install). Most slices of the log hold decisions alone, which teach
        it nothing, and a copy of every tenant's arrays per slice was a sixth of the thread.
        """
        source, target = self.processor.engine, self.serving
        assert target is not None
        counts = source.shared.updates[: len(source.shared.tenants)]
        copy_shared = shared or not np.array_equal(counts, self._shared_counts)
        if not keys and not copy_shared:
            # Nothing to copy (a slice of decisions): not even a wait for the serving
            # engine's lock, which every decision holds while it decides.
            return
        # The serving engine's lock: decisions run on other threads and UserState is not
        # safe to grow from two threads at once.
        with target.lock:
            for key in keys:
                if key in source.users:
                    target.users.put(key, source.users.get(key))
                else:
                    target.users.remove(key)
            if copy_shared:
                target.shared.copy_from(source.shared)
                self._shared_counts = counts.copy()
