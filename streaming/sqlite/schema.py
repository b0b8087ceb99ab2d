"""The tables of the embedded store's SQLite file, and the one migration between versions.

Version 2 scopes an event id to its user (``UNIQUE (tenant, user_id, event_id)``): two users
of a tenant may send the same client event id and both are stored. Version 1 files are
migrated in place when opened; offsets (and the counter that keeps them from being reused)
carry over. ``quarantine`` holds log rows no reader could decode, with the reason.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bandit import SchemaError

STORE_SCHEMA_VERSION = 2
_EVENTS = """CREATE TABLE IF NOT EXISTS {name} (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, user_id TEXT NOT NULL,
    kind TEXT NOT NULL, ts REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (tenant, user_id, event_id)
)"""
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _EVENTS.format(name="events"),
    """CREATE TABLE IF NOT EXISTS user_state (
        key TEXT PRIMARY KEY, tenant TEXT NOT NULL, data BLOB NOT NULL,
        offset INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE TABLE IF NOT EXISTS shared (partition INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS quarantine (
        offset INTEGER PRIMARY KEY, tenant TEXT, event_id TEXT, user_id TEXT, kind TEXT,
        ts REAL, body BLOB, reason TEXT NOT NULL, moved REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS quarantine_user ON quarantine (tenant, user_id)",
)


def prepare(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file, or migrate an older one; a newer version fails."""
    row = None
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
        row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
    version = STORE_SCHEMA_VERSION if row is None else int(row[0])
    if version > STORE_SCHEMA_VERSION or version < 1:
        raise SchemaError(
            f"{path}: store schema version {version} is not supported (this attune reads "
            f"versions 1 to {STORE_SCHEMA_VERSION})"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        if version == 1:
            _events_per_user(db)
        for statement in SCHEMA:
            db.execute(statement)
        columns = [c[1] for c in db.execute("PRAGMA table_info(user_state)")]
        if "offset" not in columns:
            # Files from before per-user offsets: 0 means "replay everything after the replay
            # offset", which is what those files' single offset meant.
            db.execute("ALTER TABLE user_state ADD COLUMN offset INTEGER NOT NULL DEFAULT 0")
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(STORE_SCHEMA_VERSION),)
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _events_per_user(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: rebuild ``events`` with the per-user unique key, keeping offsets."""
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
    db.execute(_EVENTS.format(name="events_v2"))
    db.execute("INSERT INTO events_v2 SELECT * FROM events")
    db.execute("DROP TABLE events")
    db.execute("ALTER TABLE events_v2 RENAME TO events")
    db.execute("DROP INDEX IF EXISTS events_user")
    if seq is not None:
        # The counter must not fall back when the newest rows were deleted: offsets are
        # never reused.
        db.execute("UPDATE sqlite_sequence SET seq=MAX(seq, ?) WHERE name='events'", (seq[0],))
