"""Idempotency keys: the ids they fix and the decisions a process remembers answering.

A decision request with a ``request_id`` gets the decision id ``decision_id_for(tenant, user,
request_id)``, the same on every process, so the log stores it once whoever logs it. The
service answers a repeat from ``RecentDecisions`` (the responses this process gave, as it gave
them) or else from the user's pending decisions the backend holds; README.md ("Idempotent
decisions") states what each backend guarantees. A profile change with an
``Idempotency-Key`` logs its events under ids derived the same way, so a retried change is
logged once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

RECENT_DECISIONS = 8192  # responses kept; older repeats are answered from pending decisions


def _digest(*parts: str) -> str:
    # \x1f (unit separator) cannot occur in the schema-checked ids, so the parts cannot run
    # into each other; 128 bits, the width of the random ids.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def decision_id_for(tenant: str, user_id: str, request_id: str) -> str:
    """The decision id of a request with ``request_id``: deterministic, shaped like a random
    one (``d_`` and 32 hex digits).

    >>> decision_id_for("acme", "ana", "msg-1") == decision_id_for("acme", "ana", "msg-1")
    True
    >>> decision_id_for("acme", "ana", "msg-1") == decision_id_for("acme", "bob", "msg-1")
    False
    """
    return "d_" + _digest("decision", tenant, user_id, request_id)


def event_id_for(tenant: str, user_id: str, key: str, op: str) -> str:
    """The event id of profile operation ``op`` of a change sent with an idempotency key."""
    return "p_" + _digest("profile", tenant, user_id, key, op)


class RecentDecisions:
    """The last ``size`` responses to requests with a request_id, by decision id.

    Decisions are answered on the event loop, erasures in the thread pool: a lock keeps
    ``forget`` from meeting a ``put``.
    """

    def __init__(self, size: int = RECENT_DECISIONS) -> None:
        self.size = size
        self._responses: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, decision_id: str) -> dict[str, Any] | None:
        found = self._responses.get(decision_id)
        return None if found is None else found[1]

    def put(self, decision_id: str, user_key: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._responses[decision_id] = (user_key, response)
            if len(self._responses) > self.size:
                self._responses.popitem(last=False)

    def forget(self, user_key: str) -> None:
        """Drop a user's responses (their erasure)."""
        with self._lock:
            for decision_id in [d for d, (k, _) in self._responses.items() if k == user_key]:
                del self._responses[decision_id]
