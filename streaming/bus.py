"""The bus URL and the backends it names: one registry, chosen by the URL's scheme.

- ``sqlite:///path/to/attune.sqlite`` (or an empty URL: ``<data_dir>/attune.sqlite``): the
  embedded backend, a SQLite log and a learner thread in the serving process
  (``streaming.sqlite.backend``).
- ``kafka://host:port?prefix=attune&partitions=8``: an API replica on Apache Kafka, publishing
  events and materializing the workers' state changelog (``streaming.kafka.backend``).

The HTTP service is written once over the ``Backend`` protocol; DESIGN.md ("The data flow")
tells the story of both.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bandit import Catalog, Engine, EngineConfig
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.memory import UserMemory
from streaming.models import ModelHost
from streaming.payloads import DecisionPayload
from streaming.retention import RetentionPolicy

# scheme -> "module:Class" of its backend, imported on use (the embedded default must not need
# the Kafka client).
BACKENDS = {
    "sqlite": "streaming.sqlite.backend:EmbeddedBackend",
    "kafka": "streaming.kafka.backend:KafkaBackend",
}


@dataclass(frozen=True)
class ServingOptions:
    """What a backend needs from the service's settings."""

    catalog: Catalog
    engine_config: EngineConfig = field(default_factory=EngineConfig)
    random_state: int | None = None
    rewards: RewardComposer = field(default_factory=RewardComposer)
    wait_window_s: float = 600.0
    default_reward: float | None = None
    checkpoint_interval_s: float = 1.0
    data_dir: Path = Path("attune-data")
    poll_interval_s: float = 5.0
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    max_resident_users: int = 100_000  # users the serving process holds in memory at most
    idle_evict_s: float = 3600.0  # ... and how long an idle one stays

    def engine(self, random_state: int | None) -> Engine:
        """An engine of these settings that decides every batch on one core: a server's
        batches are small unless it is behind, and then its other core is busy too (the
        learner, the store, the traffic itself). The serial kernels also release the GIL
        while they run; the parallel ones hold it, and their OpenMP workers wait spinning
        after each batch."""
        engine = Engine(self.catalog, self.engine_config, random_state=random_state)
        engine.parallel_min_batch = None
        return engine

    def processor_params(self) -> dict[str, Any]:
        return {"wait_window_s": self.wait_window_s, "default_reward": self.default_reward}


class Unavailable(RuntimeError):
    """The backend cannot take a write now (a full disk, a broker that does not answer); the
    service answers 503 and the client retries. Nothing was acknowledged."""


class Backend(Protocol):
    """Where the service's events go and where the state it serves from comes from."""

    engine: Engine  # serves decisions and profiles
    models: ModelHost  # the installed CF model
    store_path: Path | None  # the SQLite file the service may keep API keys in
    # Whether a delete goes out for a user this process does not know (a Kafka replica may
    # not hold a user the workers do); otherwise such a delete is a 404.
    erases_unknown: bool

    def start(self) -> None:
        """Recover or catch up state, start following the log and the models."""

    def stop(self) -> None: ...

    def log_decisions(self, events: Sequence[Event]) -> None:
        """Log decisions without waiting for durability (a lost one costs one observation)."""

    def log(self, event: Event) -> bool:
        """Log an event durably; False when its id was already logged (a duplicate)."""

    def log_applied(self, event: Event) -> None:
        """Log a profile event durably and return once the state served reflects it (notes
        and pauses are read back at once); TimeoutError if that takes too long."""

    def memory(self, key: str) -> UserMemory | None:
        """What serving needs of the user's notes and pause; read without a lock, so cheap
        enough for every decision (``streaming.memory``)."""

    def resident(self, keys: Sequence[str]) -> None:
        """Make sure the serving engine holds these users if they exist (users idle for long
        leave memory and come back here), and mark them used."""

    def has_decision(self, tenant: str, user_id: str, decision_id: str) -> bool:
        """Whether the decision was made for this user (may wait briefly for it to arrive)."""

    def find_decision(self, tenant: str, user_id: str, decision_id: str) -> DecisionPayload | None:
        """The user's decision with this id if the state this process holds still has it
        pending (applied, not yet settled and past the horizon), without waiting; the
        service remembers the decisions it made itself until then."""

    def knows(self, tenant: str, user_id: str) -> bool:
        """Whether this process holds anything of the user (state, pins, notes, events)."""

    def erase(self, tombstone: Event) -> None:
        """Erase the tombstone's user everywhere; returns once that is applied and durable."""

    def counters(self, key: str) -> dict[str, Any]: ...

    def export_user(self, key: str) -> bytes | None: ...

    def user_events(self, tenant: str, user_id: str) -> list[dict[str, Any]]: ...

    @property
    def alive(self) -> bool:
        """Every background thread the backend needs still runs (liveness)."""

    @property
    def error(self) -> BaseException | None:
        """What stopped a background thread, if one stopped."""

    @property
    def writable(self) -> bool:
        """Durable writes currently succeed (False during a full disk or a broker outage)."""

    def lag(self) -> float: ...

    def applied(self) -> int: ...

    def rejected(self) -> int: ...


def bus_scheme(url: str) -> str:
    """The registered scheme a bus URL names (``sqlite`` or ``kafka``), else ValueError."""
    scheme = urlsplit(url).scheme
    if scheme not in BACKENDS or not url.startswith(f"{scheme}://"):
        raise ValueError(
            f"bus url {url!r}: expected kafka://host:port or sqlite:///path (unknown scheme "
            f"{scheme!r}; allowed: " + ", ".join(f"{s}://" for s in BACKENDS) + ")"
        )
    return scheme


def sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///abs/path.sqlite`` (``sqlite://rel/path.sqlite``: relative to
    the working directory)."""
    path = url.removeprefix("sqlite://")
    if not path.strip("/"):
        raise ValueError(f"bus url {url!r}: expected sqlite:///path/to/file.sqlite")
    return Path(path)


def open_backend(url: str, options: ServingOptions) -> Backend:
    """The backend a bus URL names, not started; an empty URL is the embedded default.

    >>> import tempfile
    >>> from bandit import Catalog
    >>> backend = open_backend("", ServingOptions(Catalog.default(), data_dir=tempfile.mkdtemp()))
    >>> type(backend).__name__
    'EmbeddedBackend'
    >>> open_backend("redis://localhost", ServingOptions(Catalog.default()))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: bus url 'redis://localhost': ... allowed: sqlite://, kafka://)
    """
    scheme = bus_scheme(url) if url else "sqlite"
    module, _, name = BACKENDS[scheme].partition(":")
    backend: Backend = getattr(importlib.import_module(module), name)(url, options)
    return backend
