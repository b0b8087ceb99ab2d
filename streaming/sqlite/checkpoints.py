"""The embedded learner's checkpoints, in the store's file: user states, the shared model and
the replay offset, saved together in one transaction so the offset never runs ahead of the
state that reflects it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from streaming.sqlite.store import Store

READ_CHUNK = 500  # keys per query: under SQLite's limit of host parameters


class Checkpoints:
    """Checkpoint tables of a ``Store`` (``user_state``, ``shared``, the ``learner_offset``).

    Examples
    --------
    >>> import tempfile, os
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "attune.sqlite"))
    >>> cp = Checkpoints(store)
    >>> cp.save({"acme/ana": b"{}"}, {0: b"{}"}, offset=7)
    >>> cp.offset(), cp.state_offsets()
    (7, {'acme/ana': 7})
    >>> store.close()
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # Tombstones up to this offset are already gone: each save looks only at the log
        # after it, not at the whole log (a scan that grows with the log, every second).
        self._swept = 0

    def save(
        self,
        states: Mapping[str, bytes | None],
        shared: Mapping[int, bytes],
        offset: int,
        *,
        applied: int | None = None,
    ) -> None:
        """Save user states (None deletes), the shared model and the replay offset at once.
        Applied delete events (tombstones) up to ``offset`` are removed from the log here.

        ``offset`` is where a recovery replays the log from; ``applied`` (default ``offset``)
        is the offset the saved states and shared model reflect, recorded per user so that a
        replay skips what a user's state already holds.
        """
        applied = offset if applied is None else applied
        with self.store.transaction() as cur:
            for key, data in states.items():
                if data is None:
                    cur.execute("DELETE FROM user_state WHERE key=?", (key,))
                else:
                    cur.execute(
                        "INSERT OR REPLACE INTO user_state VALUES (?, ?, ?, ?)",
                        (key, key.partition("/")[0], data, applied),
                    )
            for partition, data in shared.items():
                cur.execute("INSERT OR REPLACE INTO shared VALUES (?, ?)", (partition, data))
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('learner_offset', ?)", (str(offset),))
            cur.execute(
                "DELETE FROM events WHERE offset > ? AND offset <= ? AND kind='profile' AND "
                "json_extract(body, '$.payload.op')='delete'",
                (self._swept, offset),
            )
        self._swept = max(self._swept, offset)

    def offset(self) -> int:
        """The replay offset of the last checkpoint (0 before the first)."""
        rows = self.store.query("SELECT value FROM meta WHERE name='learner_offset'")
        return int(rows[0][0]) if rows else 0

    def states(self) -> Iterator[tuple[str, bytes]]:
        yield from ((k, bytes(d)) for k, d in self.store.query("SELECT key, data FROM user_state"))

    def state_offsets(self) -> dict[str, int]:
        """The log offset each saved user state reflects."""
        return {k: int(o) for k, o in self.store.query("SELECT key, offset FROM user_state")}

    def state(self, key: str) -> bytes | None:
        rows = self.store.query("SELECT data FROM user_state WHERE key=?", (key,))
        return bytes(rows[0][0]) if rows else None

    def states_and_offsets(self, keys: Sequence[str]) -> dict[str, tuple[bytes, int]]:
        """Users' saved records and the log offset each reflects, one query per ``READ_CHUNK``
        of them; users without a record are left out."""
        out: dict[str, tuple[bytes, int]] = {}
        for start in range(0, len(keys), READ_CHUNK):
            chunk = keys[start : start + READ_CHUNK]
            rows = self.store.snapshot.query(
                "SELECT key, data, offset FROM user_state WHERE key IN "
                f"({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            out.update((k, (bytes(d), int(o))) for k, d, o in rows)
        return out

    def has(self, key: str) -> bool:
        return bool(self.store.query("SELECT 1 FROM user_state WHERE key=?", (key,)))

    def shared(self) -> dict[int, bytes]:
        return {int(p): bytes(d) for p, d in self.store.query("SELECT partition, data FROM shared")}
