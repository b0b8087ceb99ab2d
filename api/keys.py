"""API keys: the bearer key of a request, the tenant it belongs to, and where keys are kept.

Keys are never stored, only their SHA-256. They come from the settings (``[tenants.x] keys``,
``ATTUNE_API_KEYS``; operators: ``[operators] keys``, ``ATTUNE_OPERATOR_KEYS``) and, on the
embedded backend, from the ``api_keys`` table of the store's SQLite file, which
``attune keys create|list|revoke`` edits and where ``attune serve`` keeps the local
development key it creates on first run. A running service sees a key added to the table at
its first use and a revoked one within ``KeyRing.refresh_s``: no restart.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

OPERATOR = "@operator"  # the tenant column of operator keys: never a tenant name
MIN_KEY_LENGTH = 24
_SCHEMA = """CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL
)"""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (43 URL-safe characters after the prefix)."""
    return "attune-" + secrets.token_urlsafe(32)


def bearer_key(header: str) -> str | None:
    """The key of an ``Authorization`` header value ``Bearer <key>``, None without one.

    >>> bearer_key("Bearer abc"), bearer_key("Basic abc"), bearer_key("Bearer ")
    ('abc', None, None)
    """
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


class KeyStore:
    """The ``api_keys`` table of a SQLite file (its own connection; WAL allows several)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(_SCHEMA)

    def add(self, tenant: str, key: str) -> str:
        """Store a key's hash for ``tenant`` (``OPERATOR`` for an operator key); returns its id
        (the hash's first 12 hex digits)."""
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"API keys must have >= {MIN_KEY_LENGTH} characters")
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?)",
                (hash_key(key), tenant, time.time()),
            )
        return hash_key(key)[:12]

    def hashes(self) -> dict[str, str]:
        """Tenant (or ``OPERATOR``) per key hash."""
        with self._lock:
            return dict(self._db.execute("SELECT key_hash, tenant FROM api_keys").fetchall())

    def list(self, tenant: str | None = None) -> list[tuple[str, str, float]]:
        """``(id, tenant, created)`` of the stored keys, oldest first."""
        sql, args = "SELECT key_hash, tenant, created FROM api_keys", list[str]()
        if tenant is not None:
            sql, args = sql + " WHERE tenant=?", [tenant]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created", args).fetchall()
        return [(h[:12], t, float(c)) for h, t, c in rows]

    def revoke(self, tenant: str, key_id: str) -> int:
        """Delete ``tenant``'s keys whose id starts with ``key_id`` (at least 6 digits);
        returns how many."""
        if len(key_id) < 6 or not all(c in "0123456789abcdef" for c in key_id):
            raise ValueError(f"key id: expected at least 6 hex digits, got {key_id!r}")
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            cur = self._db.execute(
                "DELETE FROM api_keys WHERE tenant=? AND key_hash LIKE ?", (tenant, key_id + "%")
            )
            return cur.rowcount

    def close(self) -> None:
        self._db.close()


class KeyRing:
    """Tenant per key hash: what the service checks every request's key against.

    Parameters
    ----------
    keys : mapping of key to tenant, optional
        Keys from the settings (they stay until the settings change).
    operators : iterable of str
        Operator keys from the settings (``/metrics``).
    store : KeyStore, optional
        Where keys added and revoked at run time live; read again when an unknown key
        arrives (at most every ``min_reload_s``) and every ``refresh_s``.

    Examples
    --------
    >>> ring = KeyRing({"a-long-key-of-24-characters": "acme"})
    >>> ring.tenant_of_header("Bearer a-long-key-of-24-characters")
    'acme'
    >>> ring.tenant_of_header("Bearer nope") is None
    True
    """

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        operators: Iterable[str] = (),
        *,
        store: KeyStore | None = None,
        refresh_s: float = 5.0,
        min_reload_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = {hash_key(k): t for k, t in (keys or {}).items()}
        self._static |= {hash_key(k): OPERATOR for k in operators}
        self.store = store
        self.refresh_s = refresh_s
        self.min_reload_s = min_reload_s
        self.clock = clock
        self.by_hash = dict(self._static)
        self._loaded = float("-inf")
        if store is not None:
            self.reload()

    def __bool__(self) -> bool:
        return any(t != OPERATOR for t in self.by_hash.values())

    def reload(self) -> None:
        """Read the store's keys again (added ones appear, revoked ones go)."""
        self._loaded = self.clock()
        if self.store is not None:
            self.by_hash = {**self.store.hashes(), **self._static}

    def _role(self, key: str) -> str | None:
        h = hash_key(key)
        now = self.clock()
        if self.store is not None and now - self._loaded >= self.refresh_s:
            self.reload()
        role = self.by_hash.get(h)
        if role is None and self.store is not None and now - self._loaded >= self.min_reload_s:
            self.reload()  # perhaps added since: `attune keys create` needs no restart
            role = self.by_hash.get(h)
        return role

    def tenant_of(self, key: str) -> str | None:
        role = self._role(key)
        return None if role == OPERATOR else role

    def tenant_of_header(self, header: str) -> str | None:
        """The tenant of an ``Authorization`` header value; None for no key or an unknown one
        (or an operator key: it names no tenant)."""
        key = bearer_key(header)
        return None if key is None else self.tenant_of(key)

    def is_operator(self, header: str) -> bool:
        key = bearer_key(header)
        return key is not None and self._role(key) == OPERATOR
