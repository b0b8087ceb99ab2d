"""Compaction of the embedded store: the retention policy, applied in a background thread.

Only rows the learner will never read again are removed: offsets at or below the replay offset
of the last checkpoint (``streaming.sqlite.checkpoints``), so recovery replays exactly what it
did before. Rows go in small transactions with pauses at least as long between them, so
decisions and feedback wait for the store's lock a few milliseconds at most and have it at least
half of the time; SQLite reuses the freed pages, so under steady traffic the file
stops growing once the oldest rows it keeps are a retention period old. After erasures the
thread also rebuilds the file (``VACUUM``), at most every ``vacuum_every_s``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from streaming.retention import RetentionPolicy
from streaming.sqlite.checkpoints import Checkpoints
from streaming.sqlite.store import Store

log = logging.getLogger(__name__)
CHUNK = 500  # offsets per delete transaction


class Compactor:
    """Applies a ``RetentionPolicy`` to a store (see the module docstring).

    Parameters
    ----------
    store : Store
    policy : RetentionPolicy
    wait_window_s : float
        A decision is settled once this old (it got its feedback or the default reward).
    clock : callable
        Wall clock, compared with event times.
    vacuum_every_s : float
        Shortest time between two rebuilds after erasures.

    Examples
    --------
    >>> import os, tempfile
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "a.sqlite"))
    >>> Compactor(store, RetentionPolicy(), wait_window_s=600).run_once()
    0
    >>> store.close()
    """

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        *,
        wait_window_s: float,
        clock: Callable[[], float] = time.time,
        vacuum_every_s: float = 60.0,
    ) -> None:
        self.store = store
        self.checkpoints = Checkpoints(store)
        self.policy = policy
        self.wait_window_s = wait_window_s
        self.clock = clock
        self.vacuum_every_s = vacuum_every_s
        self.removed = 0
        self.error: BaseException | None = None
        self._erased = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_vacuum = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="attune-compactor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def erased(self) -> None:
        """A user was erased: rebuild the file at the next opportunity."""
        self._erased.set()

    def run_once(self) -> int:
        """Remove what the policy no longer keeps; returns the rows removed."""
        now = self.clock()
        upto = self.checkpoints.offset()
        removed = 0
        for kind in ("decision", "feedback"):
            keep = self.policy.keep_s(kind, wait_window_s=self.wait_window_s)
            if keep is not None:
                removed += self._events(kind, now - keep, upto)
        if self.policy.dead_letters_s:
            with self.store.transaction(durable=False) as cur:
                cur.execute(
                    "DELETE FROM quarantine WHERE moved < ?", (now - self.policy.dead_letters_s,)
                )
                removed += cur.rowcount
        self.removed += removed
        return removed

    def _events(self, kind: str, before_ts: float, upto: int) -> int:
        """Delete ``kind`` rows older than ``before_ts`` up to offset ``upto``, one window of
        ``CHUNK`` offsets per transaction (a window's scan stays short whatever it holds)."""
        removed = 0
        first = self.store.query("SELECT MIN(offset) FROM events")[0][0]
        start = (first or upto + 1) - 1
        while start < upto and not self._stop.is_set():
            end = min(upto, start + CHUNK)
            began = time.monotonic()
            with self.store.transaction(durable=False) as cur:
                cur.execute(
                    "DELETE FROM events WHERE offset > ? AND offset <= ? AND kind=? AND ts < ?",
                    (start, end, kind, before_ts),
                )
                removed += cur.rowcount
                newest = cur.execute(
                    "SELECT MAX(ts) FROM events WHERE offset > ? AND offset <= ? AND kind=?",
                    (start, end, kind),
                ).fetchone()[0]
            if newest is not None and newest >= before_ts:
                break  # the log is in time order: later windows are newer still
            start = end
            # Requests have the store between windows for at least as long as a window held
            # it: a backlog of expired rows (a burst of traffic a retention period ago) is
            # removed at half speed rather than taking the store's lock from feedback and
            # decisions for as long as it lasts.
            time.sleep(max(0.002, time.monotonic() - began))
        return removed

    def vacuum(self) -> None:
        """Rebuild the file and empty the WAL: freed pages go back to the file system."""
        self.store.execute_outside_transaction("VACUUM")
        self.store.execute_outside_transaction("PRAGMA wal_checkpoint(TRUNCATE)")
        self._last_vacuum = time.monotonic()

    def _run(self) -> None:
        next_run = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_run:
                    self.run_once()
                    next_run = time.monotonic() + self.policy.interval_s
                if (
                    self._erased.is_set()
                    and time.monotonic() - self._last_vacuum >= self.vacuum_every_s
                ):
                    self._erased.clear()
                    self.vacuum()
                self.error = None
            except sqlite3.Error as exc:  # a full disk: try again at the next round
                self.error = exc
                log.warning("compaction failed, retrying: %s", exc)
                next_run = time.monotonic() + min(self.policy.interval_s, 5.0)
            self._stop.wait(min(1.0, self.policy.interval_s))
