"""What serving a decision needs from a user's book, as one immutable snapshot.

The processor rebuilds a user's ``UserMemory`` whenever their notes or their pause change and
keeps it in ``Processor.memory``; the service reads it on every decision without a lock (a
dict lookup of an object nobody changes) to retrieve the notes for the message and to decide
a paused user from the population model alone. A user with no notes who never paused has no
snapshot at all, so most decisions pay one failed lookup.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from bandit.notes import Hit, Note, NoteIndex

TOP_NOTES = 3  # notes retrieved per decision, besides the pinned ones


@dataclass(frozen=True)
class UserMemory:
    """One user's notes (live and superseded, with history), their index and the pause.

    Build it with ``of``; ``source`` is the book's notes it was built from (compared, not
    read, to skip rebuilding an unchanged snapshot).
    """

    paused: bool
    notes: tuple[dict[str, Any], ...]
    index: NoteIndex
    source: dict[str, dict[str, Any]] = field(repr=False, compare=False)

    @classmethod
    def of(cls, notes: dict[str, dict[str, Any]], paused: bool) -> UserMemory | None:
        """The snapshot of a book's notes and pause; None when there is nothing to serve."""
        if not notes and not paused:
            return None
        source = copy.deepcopy(notes)
        ordered = tuple(sorted(source.values(), key=lambda n: (-n["updated"], n["note_id"])))
        current = [
            Note(n["note_id"], n["text"], n["updated"], n["expires"], bool(n["pinned"]))
            for n in ordered
            if n["valid_to"] is None
        ]
        return cls(paused, ordered, NoteIndex.build(current), source)

    def same(self, notes: dict[str, dict[str, Any]], paused: bool) -> bool:
        return paused == self.paused and notes == self.source

    def retrieve(self, message: str, now: float, top: int = TOP_NOTES) -> list[Hit]:
        """The notes for a message: the ``top`` best live matches, then the pinned ones."""
        return self.index.search(message, now=now, top=top)
