"""The Kafka worker's counters: its own (``WorkerStats``) and the Prometheus metrics scraped
from ``attune worker --metrics-port``."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

_EVENTS = Counter("attune_worker_events", "Events applied and committed", ["worker"])
_BATCHES = Counter("attune_worker_transactions", "Committed transactions", ["worker"])
_CHANGED = Counter(
    "attune_worker_changelog_users", "User records written to the changelog", ["worker"]
)
_DEAD = Counter("attune_worker_dead_letters", "Events sent to the dead-letter topic", ["worker"])
_LAG = Gauge("attune_worker_lag", "Events behind the partition's end", ["worker", "partition"])


class WorkerMetrics:
    """The worker's counters, labelled with its id."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def committed(self, n_events: int, n_users: int) -> None:
        _EVENTS.labels(self.worker_id).inc(n_events)
        _BATCHES.labels(self.worker_id).inc()
        _CHANGED.labels(self.worker_id).inc(n_users)

    def dead_letter(self) -> None:
        _DEAD.labels(self.worker_id).inc()

    def set_lag(self, lag: dict[int, int]) -> None:
        for partition, value in lag.items():
            _LAG.labels(self.worker_id, str(partition)).set(value)


@dataclass
class WorkerStats:
    """Counters of one worker process."""

    events: int = 0
    batches: int = 0
    dead_letters: int = 0
    restores: int = 0
    aborts: int = 0
    changelog_records: int = 0
    lag: dict[int, int] = field(default_factory=dict)
