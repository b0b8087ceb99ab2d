"""The learner inside ``attune serve``: a thread that applies the event log to the model.

It reads the SQLite log by offset, applies events with a ``Processor`` to its own engine, and
copies each changed user into the serving engine, the way API replicas materialize the state
changelog on Kafka. User state and the offset it reflects are checkpointed together in one
transaction; after a crash, ``recover`` loads the checkpoint and replays the log from its
offset (applying an event twice is a no-op), so acknowledged feedback is counted exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bandit import Engine
from streaming.processor import Processor
from streaming.store import Store


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
        How often dirty user states and the offset are saved.
    expire_interval_s : float
        How often decisions past the wait window get their default reward.
    batch : int
        Events read from the log per step.
    clock : callable
        Wall clock for the wait window (tests pass a fake one).
    """

    def __init__(
        self,
        store: Store,
        processor: Processor,
        *,
        serving: Engine | None = None,
        checkpoint_interval_s: float = 1.0,
        expire_interval_s: float = 1.0,
        batch: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.processor = processor
        self.serving = serving
        self.checkpoint_interval_s = checkpoint_interval_s
        self.expire_interval_s = expire_interval_s
        self.batch = batch
        self.clock = clock
        self.lock = threading.RLock()  # guards the processor; API reads take it too
        self.offset = 0
        self.checkpointed = 0
        self.applied_events = 0
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = self._last_expire = time.monotonic()
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> int:
        """Load the last checkpoint and replay the log after it; returns events replayed."""
        with self.lock:
            for key, data in self.store.load_states():
                self.processor.import_user(key, data)
            for partition, data in self.store.load_shared().items():
                self.processor.import_shared(partition, data)
            self.offset = self.checkpointed = self.store.checkpoint_offset()
            if self.serving is not None:
                self._sync(set(self.processor.books) | set(self.processor.engine.users.ids))
                for key, pins in self.processor.engine.pins.items():
                    self.serving.pin(key, pins)
        replayed = 0
        while (n := self.step()) > 0:
            replayed += n
        self.checkpoint()
        return replayed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="attune-learner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save a final checkpoint."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.checkpoint()

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
    def step(self) -> int:
        """Apply the next batch of the log; returns how many events it held."""
        rows = self.store.read(self.offset, self.batch)
        if not rows:
            return 0
        events = [e for _, e in rows]
        with self.lock:
            changed = self.processor.apply(events)
            self.offset = rows[-1][0]
            self.applied_events += len(events)
            self._dirty |= changed
            if self.serving is not None:
                # A decision event changes nothing the serving engine needs (it made the
                # decision): copying the user after each one would cost a sync per request.
                self._sync(changed & {e.key for e in events if e.kind != "decision"})
        if any(e.kind == "profile" and e.payload.get("op") == "delete" for e in events):
            self.checkpoint()  # an erasure must reach the disk now, not at the next tick
        with self._progress:
            self._progress.notify_all()
        return len(events)

    def expire(self) -> int:
        with self.lock:
            changed = self.processor.expire(self.clock())
            self._dirty |= changed
            if self.serving is not None:
                self._sync(changed)
        return len(changed)

    def checkpoint(self) -> None:
        """Save dirty users, the shared model and the offset, in one transaction."""
        with self.lock:
            states = {k: self.processor.export_user(k) for k in self._dirty}
            shared = {0: self.processor.export_shared(0)}
            offset = self.offset
            self.store.save_checkpoint(states, shared, offset)
            self._dirty.clear()
            self.checkpointed = offset
        self._last_checkpoint = time.monotonic()
        with self._progress:
            self._progress.notify_all()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                n = self.step()
                now = time.monotonic()
                if now - self._last_expire >= self.expire_interval_s:
                    self.expire()
                    self._last_expire = now
                if (
                    self._dirty or self.checkpointed < self.offset
                ) and now - self._last_checkpoint >= self.checkpoint_interval_s:
                    self.checkpoint()
                if n == 0:
                    self._wake.wait(0.05)
                    self._wake.clear()
        except BaseException as exc:  # surfaced by /readyz and the next wait_for
            self.error = exc
            raise

    def _sync(self, keys: set[str]) -> None:
        """Copy users (and the shared model) from the learner's engine to the serving one."""
        source, target = self.processor.engine, self.serving
        assert target is not None
        # The serving engine's lock: decisions run on other threads and UserState is not
        # safe to grow from two threads at once.
        with target.lock:
            for key in keys:
                if key in source.users:
                    target.users.put(key, source.users.get(key))
                else:
                    target.users.remove(key)
            target.W[:] = source.W
