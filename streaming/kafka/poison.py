"""Records that keep failing a worker's transaction: found by halving, then dead-lettered.

An event the processor cannot apply is normally rejected one by one and dead-lettered with
its reason. Anything else that raises while a partition's records are applied (a bug an odd
event triggers) aborts the whole transaction; the worker restores the partition and tries
again. ``PoisonGuard`` makes those retries converge: after a failure the partition's batches
are halved until the failing record is alone in its transaction, and a record that aborts
``max_attempts`` transactions on its own is dead-lettered with the error instead of being
retried forever. Broker errors never count (they are not the record's fault).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PartitionFailed(Exception):
    """Applying a partition's records raised (not a broker error)."""

    def __init__(self, partition: int, records: Sequence[Any], error: BaseException) -> None:
        super().__init__(f"partition {partition}: {error!r}")
        self.partition, self.records, self.error = partition, records, error


class PoisonGuard:
    """Bookkeeping of failing records per partition (see the module docstring).

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> guard = PoisonGuard(max_attempts=2)
    >>> batch = [R(offset=o) for o in range(10, 14)]
    >>> guard.failed(0, batch, RuntimeError("boom"))
    >>> [r.offset for r in guard.limit(0, batch)]
    [10, 11]
    >>> guard.failed(0, batch[:2], RuntimeError("boom")); guard.limit(0, batch)[0].offset
    10
    >>> for _ in range(2):
    ...     guard.failed(0, batch[:1], RuntimeError("boom"))
    >>> guard.verdict(0, 10)
    "aborted its transaction 2 times: RuntimeError('boom')"
    """

    def __init__(self, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._cap: dict[int, int] = {}  # partition -> most records per transaction for now
        self._until: dict[int, int] = {}  # partition -> last offset of the first failed batch
        self._failures: dict[tuple[int, int], int] = {}  # (partition, offset) -> alone, failed
        self._poison: dict[tuple[int, int], str] = {}  # (partition, offset) -> reason

    def limit(self, partition: int, records: Sequence[Any]) -> Sequence[Any]:
        """The records of this transaction: all of them, or a head while a failure is
        being narrowed down."""
        cap = self._cap.get(partition)
        if cap is None:
            return records
        if records[0].offset > self._until[partition]:
            del self._cap[partition], self._until[partition]
            return records
        return records[:cap]

    def verdict(self, partition: int, offset: int) -> str | None:
        """Why the record at ``offset`` is to be dead-lettered, or None to apply it."""
        return self._poison.get((partition, offset))

    def failed(self, partition: int, records: Sequence[Any], error: BaseException) -> None:
        """A transaction holding ``records`` of ``partition`` failed applying them."""
        first = records[0].offset
        self._until.setdefault(partition, records[-1].offset)
        self._cap[partition] = max(1, len(records) // 2)
        if len(records) == 1:
            n = self._failures[(partition, first)] = self._failures.get((partition, first), 0) + 1
            if n >= self.max_attempts:
                self._poison[(partition, first)] = f"aborted its transaction {n} times: {error!r}"

    def passed(self, partition: int, offset: int) -> None:
        """A transaction from ``offset`` committed (applied or dead-lettered): batches may
        grow again."""
        self._failures.pop((partition, offset), None)
        self._poison.pop((partition, offset), None)
        if partition in self._cap:
            self._cap[partition] *= 2
