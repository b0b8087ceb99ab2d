"""How events become rows of the store's ``events`` table, how they are inserted (durable
appends from several threads in one commit), the SQL that selects them, and the connection
that reads without waiting for writers."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from streaming.events import Event

log = logging.getLogger("streaming.sqlite.store")

INSERT = (
    "INSERT OR IGNORE INTO events (tenant, event_id, user_id, kind, ts, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
ROWS_PER_INSERT = 1000  # 6 parameters a row, well under SQLite's 32,766 per statement


def insert_rows(n: int) -> str:
    """``INSERT`` for ``n`` rows in one statement (SQLite inserts them in order)."""
    return INSERT + ", (?, ?, ?, ?, ?, ?)" * (n - 1)


class PendingAppend:
    """One durable append waiting for a shared commit: its rows, then its offsets or error.
    ``done`` is set, and read, with the store's lock held."""

    __slots__ = ("done", "error", "offsets", "rows")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.offsets: list[int | None] = []
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Durable appends from several threads sharing commits: whoever takes the store's lock
    next commits every append waiting for it, in one transaction and one fsync, and the others
    find theirs committed (or failed) when their turn comes."""

    def __init__(self) -> None:
        self._waiting: list[PendingAppend] = []
        self._lock = threading.Lock()

    def append(
        self,
        rows: list[tuple[Any, ...]],
        store_lock: threading.Lock,
        transaction: Callable[..., AbstractContextManager[sqlite3.Cursor]],
    ) -> list[int | None]:
        """``rows`` appended in a shared durable commit; their offsets (None for a duplicate).
        ``transaction(durable=True)`` opens a write transaction with ``store_lock`` held."""
        mine = PendingAppend(rows)
        with self._lock:
            self._waiting.append(mine)
        with store_lock:
            if not mine.done:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                try:
                    with transaction(durable=True) as cur:
                        offsets = [insert_each(cur, a.rows) for a in batch]
                except BaseException as exc:
                    for a in batch:
                        a.error, a.done = exc, True
                else:
                    for a, out in zip(batch, offsets, strict=True):
                        a.offsets, a.done = out, True
        if mine.error is not None:
            raise mine.error
        return mine.offsets


def insert_each(cur: sqlite3.Cursor, rows: list[tuple[Any, ...]]) -> list[int | None]:
    """Insert rows one by one; each one's offset, or None for a duplicate (not stored)."""
    out: list[int | None] = []
    for row in rows:
        cur.execute(INSERT, row)
        out.append(cur.lastrowid if cur.rowcount == 1 else None)
    return out


def event_row(e: Event) -> tuple[Any, ...]:
    # ``Event.to_bytes``'s document (equal once parsed), by orjson: a decision carries ~150
    # floats (its action distribution and context), which the standard library formats several
    # times slower, on the request path. What orjson refuses (integers past 64 bits in a free-form
    # audit object) goes the standard library's way; a non-finite float becomes null.
    try:
        body = orjson.dumps(e.to_dict()).decode("utf-8")
    except orjson.JSONEncodeError:
        body = e.to_bytes().decode("utf-8")
    return (e.tenant, e.event_id, e.user_id, e.kind, float(e.ts), body)


def encoded_rows(events: list[Event]) -> list[tuple[Any, ...]]:
    """The rows of queued events. One that cannot be encoded (the edge's schemas should make
    that impossible) is logged and left out: kept, it would fail every later commit too."""
    rows = []
    for e in events:
        try:
            rows.append(event_row(e))
        except (TypeError, ValueError):
            log.exception("store: event %s of %s cannot be encoded; not stored", e.event_id, e.key)
    return rows


def drop_through(recent: OrderedDict[int, Event], offset: int) -> None:
    """Forget remembered events up to ``offset`` (the dict is in offset order)."""
    while recent:
        first = next(iter(recent))
        if first > offset:
            return
        recent.popitem(last=False)


def filters(
    kinds: Iterable[str] | None, tenant: str | None, user_id: str | None, upto: int | None
) -> tuple[str, list[Any]]:
    where, args = "", list[Any]()
    if upto is not None:
        where += " AND offset <= ?"
        args.append(upto)
    if kinds is not None:
        kinds = list(kinds)
        where += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += kinds
    if tenant is not None:
        where += " AND tenant=?"
        args.append(tenant)
    if user_id is not None:
        where += " AND user_id=?"
        args.append(user_id)
    return where, args


class SnapshotReader:
    """Read queries on a connection of their own, opened on first use: in WAL mode it sees
    the last commit without waiting for the writers' lock, which a durable commit holds
    through its fsync (a user coming back into memory should not wait for others' feedback)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self.path, check_same_thread=False)
                self._db.execute("PRAGMA query_only=ON")
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
