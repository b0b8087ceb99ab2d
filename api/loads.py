"""Bringing users back into memory for the decisions that need them, a batch at a time.

A user who left memory while idle (``streaming.sqlite.residency``) comes back from the store
before their decision: a store read and a hold of the learner's lock, in a thread, so the
event loop serves everyone else meanwhile. One thread per request would have every returning
user's request take a pool thread only to queue on that same lock, and with many users
coming back at once (a soak's hundreds a second) the pool, not the work, set the pace.
``Loads`` keeps one load running at a time: users asked for while it runs wait together
for the next one, which reads them in one query under one hold of the lock, so a backlog
is cleared in fewer, larger steps the longer it grows.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

_LOADS: weakref.WeakKeyDictionary[Any, Loads] = weakref.WeakKeyDictionary()


class Loads:
    """Batched ``backend.resident`` calls for one service (see the module docstring)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._keys: dict[str, None] = {}  # asked for since the running load began
        self._waiting: list[asyncio.Future[None]] = []
        self._running: asyncio.Task[None] | None = None
        self.batches = 0  # loads run (tests look)

    @classmethod
    def of(cls, service: Any) -> Loads:
        loads = _LOADS.get(service)
        if loads is None:
            loads = _LOADS[service] = cls(service)
        return loads

    async def resident(self, keys: list[str]) -> None:
        """Return once the serving engine holds these users (or they have no record: new
        users need nothing); raises what the load raised."""
        missing = [key for key in keys if key not in self.service.engine.users]
        if not missing:
            return
        future = asyncio.get_running_loop().create_future()
        self._keys.update(dict.fromkeys(missing))
        self._waiting.append(future)
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                keys, self._keys = list(self._keys), {}
                waiting, self._waiting = self._waiting, []
                self.batches += 1
                try:
                    await asyncio.to_thread(self.service.backend.resident, keys)
                except Exception as exc:  # every request of the batch hears of it
                    for future in waiting:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for future in waiting:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._running = None
