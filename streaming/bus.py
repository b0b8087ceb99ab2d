"""The bus: where events go. One protocol, two backends, chosen by URL.

- ``sqlite:///path/to/attune.sqlite``: the embedded log (``SqliteBus``), no services.
- ``kafka://host:port?prefix=attune``: Apache Kafka (``streaming.kafka_bus.KafkaBus``).

>>> import tempfile, os
>>> bus = make_bus("sqlite:///" + os.path.join(tempfile.mkdtemp(), "a.sqlite"))
>>> type(bus).__name__
'SqliteBus'
>>> bus.close()
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from streaming.events import Event
from streaming.store import Store


@runtime_checkable
class Bus(Protocol):
    """Where producers put events. ``publish`` returns once the events are durable."""

    def publish(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class SqliteBus:
    """The embedded bus: the event log of a ``Store``.

    Parameters
    ----------
    store : Store or path
        An open store (shared with the learner in ``attune serve``) or the file to open.
    """

    def __init__(self, store: Store | str | Path) -> None:
        self._owned = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store)

    def publish(self, events: Sequence[Event], *, durable: bool = True) -> None:
        """Append to the log; with ``durable`` (the default) the commit is fsynced."""
        self.store.append(events, durable=durable)

    def close(self) -> None:
        if self._owned:
            self.store.close()


def _sqlite(url: str) -> Bus:
    # sqlite:///abs/path.sqlite is absolute, sqlite://rel/path.sqlite relative to the cwd.
    path = url.removeprefix("sqlite://")
    if not path.strip("/"):
        raise ValueError(f"bus url {url!r}: expected sqlite:///path/to/file.sqlite")
    return SqliteBus(path)


def _kafka(url: str) -> Bus:
    # Imported on use: the embedded default must not need the Kafka client.
    module = importlib.import_module("streaming.kafka_bus")
    bus: Bus = module.KafkaBus.from_url(url)
    return bus


BUSES: dict[str, Callable[[str], Bus]] = {"sqlite": _sqlite, "kafka": _kafka}


def make_bus(url: str) -> Bus:
    """The bus a URL names; the scheme picks the backend (``sqlite`` or ``kafka``)."""
    scheme = urlsplit(url).scheme
    try:
        factory = BUSES[scheme]
    except KeyError:
        raise ValueError(
            f"bus url {url!r}: unknown scheme {scheme!r}; allowed: "
            + ", ".join(f"{s}://" for s in BUSES)
        ) from None
    return factory(url)
