"""The embedded store: one SQLite file (WAL) holding the event log and the learner's state.

Tables (``streaming.sqlite.schema``): ``events`` (the log, ``offset`` increasing and never
reused, unique per ``(tenant, user_id, event_id)`` so a resent event is stored once),
``user_state`` and ``shared`` (the learner's checkpoints, ``streaming.sqlite.checkpoints``),
``quarantine`` (log rows no reader could decode, moved there with the reason instead of
failing every reader after them) and ``meta`` (schema version, replay offset). The API layer
keeps its key hashes in the same file (``api.keys``). Deleted content is overwritten
(``secure_delete``), so an erased user's rows do not linger in free pages.

Durability: writes a client is told are durable (feedback, profile changes) commit with
``synchronous=FULL``, which fsyncs the WAL. Decisions are queued (``append_later``) and group
committed every few milliseconds without fsync: a killed process loses at most the last few
milliseconds of decisions; the next durable commit fsyncs them with itself, and every read
commits the queue first, so feedback always finds its decision. A write that fails (a full
disk) rolls back and raises, leaving the connection ready for the next one; the queue keeps
what it could not commit (up to ``MAX_QUEUED`` rows, the oldest dropped beyond), lookups by id
still find what it holds, and the flusher retries with backoff until the disk takes it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streaming.composer import RewardComposer
from streaming.events import Event, EventError
from streaming.join import decision_log
from streaming.sqlite.rows import (
    ROWS_PER_INSERT,
    GroupCommit,
    SnapshotReader,
    drop_through,
    encoded_rows,
    event_row,
    filters,
    insert_each,
    insert_rows,
)
from streaming.sqlite.schema import STORE_SCHEMA_VERSION, prepare

__all__ = ["MAX_QUEUED", "STORE_SCHEMA_VERSION", "Store"]
log = logging.getLogger(__name__)
MAX_QUEUED = 100_000  # decisions waiting for a group commit; beyond, the oldest are dropped


class Store:
    """The SQLite file behind ``attune serve``. Thread-safe: one connection, one lock.

    Parameters
    ----------
    path : str or Path
        The database file; created with its folder when missing.

    Examples
    --------
    >>> import tempfile, os
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "attune.sqlite"))
    >>> e = Event("feedback", "f1", "acme", "ana", 1.0, {"decision_id": "d1", "kind": "thumbs",
    ...           "value": "up"})
    >>> store.append([e, e])
    [1, None]
    >>> store.close()
    """

    def __init__(self, path: str | Path, *, flush_interval_s: float = 0.005) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Deleted rows are overwritten with zeros, not left readable in free pages; the WAL
        # is cut back to this size after each checkpoint instead of keeping its peak.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        with self._lock:
            prepare(self._db, self.path)
        self._synchronous = "NORMAL"
        self._later: list[Event] = []  # encoded into rows by the flusher, off the request path
        self._later_lock = threading.Lock()
        self._queued = threading.Event()  # the flusher sleeps on it while nothing is queued
        # Events committed by group commit, by offset, until a reader passes them: the learner
        # reads each decision back a few milliseconds after it was queued, and parsing its
        # document again would cost more than everything else the learner does with it.
        # An OrderedDict: dropping the oldest entries is O(1) each, where a plain dict's
        # ``next(iter(d))`` scans every slot its earlier deletions left empty.
        self._recent: OrderedDict[int, Event] = OrderedDict()
        self._flush_interval_s = flush_interval_s
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()
        self.dropped = 0  # queued decisions dropped because the queue was full
        self.quarantined = 0  # rows moved to the quarantine table by this process
        self.write_error: BaseException | None = None  # the last failed write, None once one works
        self._group = GroupCommit()  # durable appends waiting for a commit (see append)
        self.snapshot = SnapshotReader(self.path)  # reads that need not wait for writers

    # ------------------------------------------------------------------ the log
    def append(self, events: Sequence[Event], *, durable: bool = True) -> list[int | None]:
        """Append events in one transaction; returns each one's offset, or None for an event
        whose ``(tenant, event_id)`` is already in the log (it is not stored again).

        With ``durable`` the commit fsyncs (``synchronous=FULL``), see the module docstring.
        Durable appends from several threads share commits (``GroupCommit``).
        """
        rows = [event_row(e) for e in events]
        if not durable:
            with self.transaction(durable=False) as cur:
                return insert_each(cur, rows)
        return self._group.append(rows, self._lock, self._transaction_locked)

    @property
    def writable(self) -> bool:
        """False while writes fail (a full disk); True again after the next one succeeds."""
        return self.write_error is None

    @property
    def flusher_alive(self) -> bool:
        """The group-commit thread runs (or was never needed)."""
        return self._flusher is None or self._flusher.is_alive() or self._closed.is_set()

    def append_later(self, events: Sequence[Event]) -> None:
        """Queue events for the next group commit (within ``flush_interval_s``, or before any
        read or other write of this store, so readers always see them).

        For decisions: the caller does not wait for SQLite at all. A killed process loses at
        most the last ``flush_interval_s`` of them (feedback for such a decision then gets
        404); acknowledged feedback never takes this path.
        """
        with self._later_lock:
            self._later.extend(events)
            over = len(self._later) - MAX_QUEUED
            if over > 0:  # the disk refuses writes for long: keep memory bounded
                del self._later[:over]
                self.dropped += over
        if not self._queued.is_set():
            self._queued.set()
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="attune-store-flush", daemon=True
            )
            self._flusher.start()

    def flush(self) -> None:
        """Commit queued events now."""
        with self._lock:
            self._flush_locked()

    def read(self, after: int, limit: int = 1000) -> list[tuple[int, Event]]:
        """Events with offset > ``after``, in offset order, at most ``limit``; a row that does
        not decode is moved to the quarantine table instead (see ``quarantine``)."""
        with self._lock:
            self._flush_quietly()
            recent = self._recent
            # Offsets first (the primary key alone, no row bodies): the events still in
            # ``recent`` are not read back from SQLite at all.
            offsets = [
                off
                for (off,) in self._db.execute(
                    "SELECT offset FROM events WHERE offset > ? ORDER BY offset LIMIT ?",
                    (after, limit),
                )
            ]
            missing = [off for off in offsets if off not in recent]
            bodies = dict(self._bodies(missing)) if missing else {}
            out = []
            for off in offsets:
                event = recent.get(off) or self._decode(off, bodies.get(off))
                if event is not None:
                    out.append((off, event))
            if offsets and recent:
                drop_through(recent, offsets[-1])
        return out

    def _decode(self, offset: int, body: str | bytes | None) -> Event | None:
        """The event of a row; None (and the row quarantined) when it does not decode."""
        if body is None:
            return None  # deleted since its offset was read
        try:
            return Event.from_bytes(body)
        except (EventError, ValueError, TypeError) as exc:
            self._quarantine(offset, f"undecodable event: {exc}")
            return None

    def _quarantine(self, offset: int, reason: str) -> None:
        # Called with the lock held, outside any transaction of this connection.
        log.error("store: moving log row %d to the quarantine table: %s", offset, reason)
        try:
            self._set_sync("FULL")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO quarantine SELECT offset, tenant, event_id, user_id, "
                "kind, ts, body, ?, ? FROM events WHERE offset=?",
                (reason[:1000], time.time(), offset),
            )
            self._db.execute("DELETE FROM events WHERE offset=?", (offset,))
            self._db.execute("COMMIT")
            self.quarantined += 1
        except sqlite3.Error:
            self._rollback()
            log.exception("store: quarantining row %d failed; it is skipped for now", offset)

    def _bodies(self, offsets: list[int]) -> Iterator[tuple[int, str]]:
        """``(offset, body)`` of the given offsets (in chunks under SQLite's parameter limit)."""
        for start in range(0, len(offsets), ROWS_PER_INSERT):
            chunk = offsets[start : start + ROWS_PER_INSERT]
            yield from self._db.execute(
                f"SELECT offset, body FROM events WHERE offset IN ({','.join('?' * len(chunk))})",
                chunk,
            )

    def last_offset(self) -> int:
        with self._lock:
            self._flush_quietly()
            row = self._db.execute("SELECT MAX(offset) FROM events").fetchone()
        return int(row[0] or 0)

    def get_event(
        self, tenant: str, event_id: str, kind: str | None = None, *, user_id: str | None = None
    ) -> Event | None:
        """The event with this id (of this user: ids are unique per user; without
        ``user_id``, the first of the tenant's events with the id)."""
        sql = "SELECT offset, kind, body FROM events WHERE tenant=? AND event_id=?"
        args = [tenant, event_id]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        with self._lock:
            self._flush_quietly()
            row = self._db.execute(sql + " LIMIT 1", args).fetchone()
            if row is None:
                return self._queued_event(tenant, event_id, kind, user_id)
            if kind is not None and row[1] != kind:
                return None
            return self._decode(row[0], row[2])

    def _queued_event(
        self, tenant: str, event_id: str, kind: str | None, user_id: str | None
    ) -> Event | None:
        # The queue is empty here unless its commit just failed (a full disk): a decision
        # served meanwhile is still known, so its feedback gets the write's 503, not a 404.
        with self._later_lock:
            for e in reversed(self._later):  # feedback follows its decision closely
                if (
                    e.event_id == event_id
                    and e.tenant == tenant
                    and (user_id is None or e.user_id == user_id)
                ):
                    return e if kind is None or e.kind == kind else None
        return None

    def iter_events(
        self,
        *,
        kinds: Iterable[str] | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
        upto: int | None = None,
        batch: int = 5000,
    ) -> Iterator[Event]:
        """Every stored event, in log order, optionally of some kinds, one tenant, one user,
        up to offset ``upto``."""
        where, args = filters(kinds, tenant, user_id, upto)
        after = 0
        while True:
            with self._lock:
                self._flush_quietly()
                rows = self._db.execute(
                    f"SELECT offset, body FROM events WHERE offset > ?{where} "
                    "ORDER BY offset LIMIT ?",
                    (after, *args, batch),
                ).fetchall()
                events = [self._decode(off, body) for off, body in rows]
            if not rows:
                return
            yield from (e for e in events if e is not None)
            after = rows[-1][0]

    def decision_log(
        self, tenant: str | None = None, composer: RewardComposer | None = None
    ) -> list[dict[str, Any]]:
        """Logged decisions with their rewards (``streaming.join.decision_log``)."""
        return decision_log(self.iter_events(tenant=tenant), composer)

    def delete_user(self, tenant: str, user_id: str, *, keep: Sequence[int] = ()) -> int:
        """Erase a user's rows from the log (except offsets in ``keep``) and their state."""
        key = f"{tenant}/{user_id}"
        marks = ",".join("?" * len(keep))
        with self.transaction() as cur:
            cur.execute(
                "DELETE FROM events WHERE tenant=? AND user_id=?"
                + (f" AND offset NOT IN ({marks})" if keep else ""),
                (tenant, user_id, *keep),
            )
            n = cur.rowcount
            cur.execute("DELETE FROM user_state WHERE key=?", (key,))
            cur.execute("DELETE FROM quarantine WHERE tenant=? AND user_id=?", (tenant, user_id))
            kept = set(keep)
            for off in [
                off
                for off, e in self._recent.items()
                if e.tenant == tenant and e.user_id == user_id and off not in kept
            ]:
                del self._recent[off]
        return n

    # ------------------------------------------------------------------ other tables
    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        """One write transaction (queued decisions are committed first); rolled back if the
        block raises. ``durable``: the commit fsyncs."""
        with self._lock, self._transaction_locked(durable=durable) as cur:
            yield cur

    @contextmanager
    def _transaction_locked(self, *, durable: bool) -> Iterator[sqlite3.Cursor]:
        # ``transaction`` with the lock already held.
        try:
            self._flush_locked()
            self._set_sync("FULL" if durable else "NORMAL")
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except sqlite3.Error as exc:
            self.write_error = exc
            raise
        self.write_error = None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """All rows of a read query."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def execute_outside_transaction(self, sql: str) -> list[Any]:
        """Run a statement that must not run inside a transaction (``VACUUM``, a WAL
        checkpoint), after committing the queue."""
        with self._lock:
            self._flush_locked()
            return self._db.execute(sql).fetchall()

    def close(self) -> None:
        with self._lock:
            self._flush_quietly()
            self._closed.set()
            self._queued.set()  # let the flusher see the store is closed
            self._db.close()
        self.snapshot.close()

    def _rollback(self) -> None:
        # SQLite rolls some failed statements back by itself (a full disk can end the
        # transaction); roll back only what is still open, so the connection is always left
        # outside a transaction and the next write can begin.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("store: rollback failed")

    def _flush_quietly(self) -> None:
        # Readers commit the queue first so they see it; when the disk refuses, they read
        # what is committed, and the queue waits for the flusher's next try. Said once per
        # outage, not once per read: a full disk is no place for a warning per request.
        was_writable = self.writable
        try:
            self._flush_locked()
        except sqlite3.Error as exc:
            if was_writable:
                log.warning("store: group commit failed, the queue is kept: %s", exc)

    def _flush_locked(self) -> None:
        # Called with the lock held. Queued rows go in one transaction without fsync, like
        # any decision append.
        if not self._later:
            return
        with self._later_lock:
            queued, self._later = self._later, []
        rows = encoded_rows(queued)
        stored = last = 0
        try:
            self._set_sync("NORMAL")
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            # Multi-row INSERTs rather than ``executemany``: each statement releases and
            # retakes the GIL once, where ``executemany`` does so per row, and each retake can
            # make a request on the event loop wait for the GIL.
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                cur.execute(insert_rows(len(chunk)), [v for row in chunk for v in row])
                stored += cur.rowcount
                last = cur.lastrowid or last
            cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            with self._later_lock:  # nothing was committed: the rows go back, in order
                self._later[:0] = queued
            if isinstance(exc, sqlite3.Error):
                self.write_error = exc
            raise
        self.write_error = None
        if stored == len(rows) == len(queued):
            # Every row was new, so AUTOINCREMENT gave them consecutive offsets ending at
            # ``last`` (the lock keeps other writers out); otherwise nothing is remembered.
            recent = self._recent
            for off, event in enumerate(queued, start=last - stored + 1):
                recent[off] = event
            if len(recent) > _RECENT_MAX:  # nobody reads the log: keep the newest only
                drop_through(recent, last - _RECENT_MAX)

    def _flush_loop(self) -> None:
        # Idle until something is queued (no wake-ups, no GIL taken, while no decisions
        # come), then group commit what arrived within the interval. A failed commit keeps
        # its rows queued and is retried after a pause that doubles up to a second.
        pause = self._flush_interval_s
        while self._queued.wait() and not self._closed.wait(pause):
            self._queued.clear()  # before flushing, so a later append starts the next round
            with self._lock:
                if self._closed.is_set():
                    return
                try:
                    self._flush_locked()
                    pause = self._flush_interval_s
                except Exception as exc:  # the thread must outlive a full disk
                    log.warning("store: group commit failed, retrying: %s", exc)
                    pause = min(1.0, max(2 * pause, 0.01))
                    self._queued.set()

    def _set_sync(self, level: str) -> None:
        # Called with the lock held and outside a transaction (SQLite ignores the pragma
        # inside one); skipped when unchanged, since every pragma costs a statement.
        if level != self._synchronous:
            self._db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level


_RECENT_MAX = 20_000
