"""The decisions this process logged lately, so feedback finds its decision in memory.

Feedback must name a decision the log holds. It comes seconds to minutes after the decision,
so most look-ups end here: the learner's books hold a decision only once it is applied (not
while the learner is behind, as under a burst), and the store answers with a read under the
lock that every store read and write shares.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable

CAPACITY = 65_536  # ids kept: minutes of decisions at hundreds a second


class RecentDecisions:
    """The ids of the last ``capacity`` decisions logged, with their users (oldest leave
    first). An erased user's ids leave at once (``forget``): feedback on a decision from before
    the erasure must not be taken on this memory's word.

    Examples
    --------
    >>> recent = RecentDecisions(capacity=2)
    >>> recent.add([("acme/ana", "d1"), ("acme/ana", "d2"), ("acme/bo", "d3")])
    >>> recent.has("acme/ana", "d1"), recent.has("acme/ana", "d2"), recent.has("acme/bo", "d3")
    (False, True, True)
    >>> recent.forget("acme/bo")
    >>> recent.has("acme/bo", "d3")
    False
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        # One string per decision, "tenant/user/decision": ids cannot hold a "/", so it is
        # unambiguous, and a string costs a third of a tuple of three.
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, decisions: Iterable[tuple[str, str]]) -> None:
        """Remember ``(user key, decision id)`` pairs."""
        with self._lock:
            ids = self._ids
            for key, decision_id in decisions:
                ids[f"{key}/{decision_id}"] = None
            over = len(ids) - self.capacity
            if over > 0:
                for old in list(itertools.islice(ids, over)):
                    del ids[old]

    def has(self, key: str, decision_id: str) -> bool:
        return f"{key}/{decision_id}" in self._ids

    def forget(self, key: str) -> None:
        """Drop every decision of the user ``key``."""
        prefix = f"{key}/"
        with self._lock:
            self._ids = {k: None for k in self._ids if not k.startswith(prefix)}
