"""Which users the embedded backend holds in memory, and who leaves when.

Every user the serving engine or the learner holds is in ``Residency`` with the time it was
last used (a decision, an event applied, a profile read). Users idle for ``idle_s``, and the
least recently used beyond ``max_users``, leave both engines; they come back from the store
(their checkpointed record) on their next request or event. A user leaves only once nothing
of theirs is unsaved (``Learner`` checks) and has no decision still waiting for feedback or
its default reward, so the learner's exactness is untouched: what comes back is exactly what
left, and the replay offsets per user stay valid. A user used within ``min_idle_s`` never
leaves, so a request that has just touched its user finds it resident.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager


class Residency:
    """Last use per resident user, oldest first (see the module docstring).

    Examples
    --------
    >>> now = [0.0]
    >>> r = Residency(max_users=2, idle_s=60, min_idle_s=1, clock=lambda: now[0])
    >>> r.touch(["a", "b", "c"]); now[0] = 5.0; r.touch(["b"])
    >>> [key for key, _ in r.leaving()]  # over the cap by one: the least recently used
    ['a']
    >>> now[0] = 100.0; [key for key, _ in r.leaving()]  # idle for longer than idle_s
    ['a', 'c', 'b']
    """

    def __init__(
        self,
        max_users: int,
        idle_s: float,
        *,
        min_idle_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_users < 1:
            raise ValueError(f"max_users must be >= 1, got {max_users}")
        self.max_users = max_users
        self.idle_s = idle_s
        self.min_idle_s = min_idle_s
        self.clock = clock
        self._used: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._used)

    def __contains__(self, key: object) -> bool:
        return key in self._used

    def touch(self, keys: Iterable[str]) -> None:
        """The users were used now."""
        now = self.clock()
        with self._lock:
            used = self._used
            for key in keys:
                used[key] = now
                used.move_to_end(key)

    def leaving(self) -> list[tuple[str, float]]:
        """``(key, last use)`` of the users due to leave, least recently used first: idle for
        ``idle_s``, or beyond ``max_users`` and idle for ``min_idle_s``."""
        now = self.clock()
        out = []
        with self._lock:
            over = len(self._used) - self.max_users
            for key, used in self._used.items():
                idle = now - used
                if idle < self.min_idle_s or (over <= 0 and idle < self.idle_s):
                    break
                out.append((key, used))
                over -= 1
        return out

    @contextmanager
    def releasing(self, leaving: Iterable[tuple[str, float]]) -> Iterator[list[str]]:
        """Hold the lock while users leave: yields those of ``(key, last use)`` that may (not
        used since), and forgets them when the block ends without error."""
        with self._lock:
            used = self._used
            ok = [key for key, last in leaving if used.get(key) == last]
            yield ok
            for key in ok:
                del used[key]

    def forget(self, key: str) -> None:
        with self._lock:
            self._used.pop(key, None)
