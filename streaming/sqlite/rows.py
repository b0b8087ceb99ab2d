"""How events become rows of the store's ``events`` table, and the SQL that selects them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson

from streaming.events import Event

INSERT = (
    "INSERT OR IGNORE INTO events (tenant, event_id, user_id, kind, ts, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
ROWS_PER_INSERT = 1000  # 6 parameters a row, well under SQLite's 32,766 per statement


def insert_rows(n: int) -> str:
    """``INSERT`` for ``n`` rows in one statement (SQLite inserts them in order)."""
    return INSERT + ", (?, ?, ?, ?, ?, ?)" * (n - 1)


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
