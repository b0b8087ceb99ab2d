"""API keys: the bearer key of a request, the tenant it belongs to, and where keys are kept.

Keys are never stored, only their SHA-256. They come from the settings (``[tenants.x] keys``,
``ATTUNE_API_KEYS``) and, on the embedded backend, from the ``api_keys`` table of the store's
SQLite file (where ``attune serve`` keeps the local development key it creates on first run).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL
)"""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_key(header: str) -> str | None:
    """The key of an ``Authorization`` header value ``Bearer <key>``, None without one.

    >>> bearer_key("Bearer abc"), bearer_key("Basic abc"), bearer_key("Bearer ")
    ('abc', None, None)
    """
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


class KeyRing:
    """Tenant per key hash: what the service checks every request's key against.

    Examples
    --------
    >>> ring = KeyRing({"a-long-key-1234": "acme"})
    >>> ring.tenant_of_header("Bearer a-long-key-1234"), ring.tenant_of_header("Bearer nope")
    ('acme', None)
    """

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self.by_hash = {hash_key(k): t for k, t in (keys or {}).items()}

    def __bool__(self) -> bool:
        return bool(self.by_hash)

    def tenant_of(self, key: str) -> str | None:
        return self.by_hash.get(hash_key(key))

    def tenant_of_header(self, header: str) -> str | None:
        """The tenant of an ``Authorization`` header value; None for no key or an unknown one."""
        key = bearer_key(header)
        return None if key is None else self.tenant_of(key)


class KeyStore:
    """The ``api_keys`` table of a SQLite file (its own connection; WAL allows several)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)

    def add(self, tenant: str, key: str) -> None:
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?)", (hash_key(key), tenant, time.time())
        )

    def hashes(self) -> dict[str, str]:
        """Tenant per key hash."""
        return dict(self._db.execute("SELECT key_hash, tenant FROM api_keys").fetchall())

    def close(self) -> None:
        self._db.close()
