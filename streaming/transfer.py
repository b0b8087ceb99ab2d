"""Moving a processor's state as bytes: a user's book and engine arrays, a partition's
shared model.

``export_user`` (JSON, for a user's data export), ``export_record`` (binary, for the Kafka
changelog and the embedded learner's checkpoints) and ``import_user`` (either) move a user's
whole processing state; ``streaming.user_record`` defines both formats. ``export_shared``
and ``import_shared`` move the shared model as one partition's engine holds it
(``bandit.shared``).
"""

from __future__ import annotations

import heapq
import json
from typing import Any

import numpy as np

from bandit import Engine
from streaming import user_record
from streaming.book import Book
from streaming.memory import UserMemory

SHARED_VERSION = 2  # the shared-model record of a partition (``export_shared``)


class StateTransfer:
    """The state-transfer half of ``streaming.processor.Processor``, which provides what is
    declared here."""

    engine: Engine
    books: dict[str, Book]
    memory: dict[str, UserMemory]
    combine_partitions: bool
    _expiry: dict[int, list[tuple[float, str, str]]]
    _note_expiry: dict[int, list[tuple[float, str, str]]]
    _parts: dict[int, dict[str, dict[str, np.ndarray]]]

    def _flush(self) -> None:
        raise NotImplementedError

    def _remember(self, key: str, book: Book) -> None:
        raise NotImplementedError

    def export_user(self, key: str) -> bytes | None:
        """A user's whole processing state as JSON bytes (``streaming.user_record`` version
        1), or None when nothing is held."""
        doc = self._document(key)
        return None if doc is None else user_record.encode_json(doc)

    def export_record(self, key: str) -> bytes | None:
        """Like ``export_user``, in the compact binary changelog format (version 2)."""
        doc = self._document(key, raw=True)
        return None if doc is None else user_record.encode_binary(doc)

    def import_user(self, key: str, data: bytes | None, *, partition: int = 0) -> None:
        """Replace a user's state with an export of either format (None erases the user)."""
        self._flush()
        if data is None:
            self.engine.forget(key)
            self.books.pop(key, None)
            self.memory.pop(key, None)
            return
        doc = user_record.decode(data)
        if doc["engine"] is not None:
            self.engine.users.put(key, doc["engine"])
        # The record's pins and features replace the user's: an unpin must reach replicas too.
        cleared: dict[str, str | None] = dict.fromkeys(self.engine.pins.get(key, {}))
        self.engine.pin(key, {**cleared, **doc["pins"]})
        features = doc.get("features") or {}
        with self.engine.lock:
            if features:
                self.engine.user_features[key] = dict(features)
            else:
                self.engine.user_features.pop(key, None)
        book = self.books[key] = Book.from_document(doc)
        heap = self._expiry.setdefault(partition, [])
        for decision_id, entry in book.pending.items():
            if not entry["feedback"] and not entry["expired"]:
                heapq.heappush(heap, (entry["ts"], key, decision_id))
        if key not in self.memory or not self.memory[key].same(book.notes, book.paused):
            notes_heap = self._note_expiry.setdefault(partition, [])
            for note_id, note in book.notes.items():
                if note["expires"] is not None:
                    heapq.heappush(notes_heap, (note["expires"], key, note_id))
            self._remember(key, book)

    def _document(self, key: str, *, raw: bool = False) -> dict[str, Any] | None:
        """The user's document (``Book.document``; ``raw`` for orjson to encode), or None."""
        self._flush()
        book = self.books.get(key)
        in_engine = key in self.engine.users
        if book is None and not in_engine:
            return None
        engine = self.engine
        return (book or Book()).document(
            engine.users.get(key) if in_engine else None,
            engine.pins.get(key, {}),
            engine.user_features.get(key, {}),
            raw=raw,
        )

    def export_shared(self, partition: int = 0) -> bytes:
        """The shared model as this processor's engine holds it: every tenant's posterior and
        what this engine's own updates contributed (``bandit.shared``)."""
        self._flush()
        return json.dumps(self._shared_document(partition)).encode()

    def import_shared(self, partition: int, data: bytes) -> None:
        """Restore the shared model from a partition's record; with ``combine_partitions``,
        keep each partition's contribution and serve their sum instead."""
        self._flush()
        self._load_shared_document(partition, json.loads(data))

    def _shared_document(self, partition: int) -> dict[str, Any]:
        """What a partition record holds (subclasses add to it)."""
        shared = self.engine.shared
        tenants = {
            name: {k: user_record.pack_array(v) for k, v in shared.export(name).items()}
            for name in shared.tenants
        }
        return {"version": SHARED_VERSION, "tenants": tenants}

    def _load_shared_document(self, partition: int, doc: dict[str, Any]) -> None:
        if doc.get("version") != SHARED_VERSION:
            raise ValueError(
                f"shared model record version {doc.get('version')!r} is not supported (this "
                f"attune reads version {SHARED_VERSION})"
            )
        tenants = {
            name: {k: user_record.unpack_array(v) for k, v in arrays.items()}
            for name, arrays in doc["tenants"].items()
        }
        shared = self.engine.shared
        with self.engine.lock:
            if self.combine_partitions:
                self._parts[partition] = tenants
                shared.combine(list(self._parts.values()))
            else:
                for name, arrays in tenants.items():
                    shared.load(name, arrays)
