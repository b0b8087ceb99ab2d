"""Memory notes through the service: add, list, edit and delete a user's notes.

Each change is a profile event on the same log as everything else (``streaming.notes`` says
what applying it does) and returns once the served state holds it, so the next decision
retrieves the note and the answer shows it as stored.
"""

from __future__ import annotations

import time
from typing import Any

from api.service import InputError, NotFound, Service
from streaming.events import Event, new_id
from streaming.notes import MAX_LIVE_NOTES, view
from streaming.payloads import ProfilePayload


class Conflict(RuntimeError):
    """A change that the note's state does not allow (editing a superseded note)."""


def list_notes(service: Service, tenant: str, user_id: str) -> list[dict[str, Any]]:
    """Every note of the user, current first, with status and history; 404 for an unknown
    user."""
    memory = service.memory(tenant, user_id)
    if memory is None:
        if not service.lane(tenant).backend.knows(tenant, user_id):
            raise NotFound(f"unknown user {user_id!r}")
        return []
    now = time.time()
    return [view(n, now) for n in memory.notes]


def add_note(service: Service, tenant: str, user_id: str, fields: dict[str, Any]) -> dict:
    """Store a new note (``NoteCreate``'s fields); returns it as stored."""
    memory = service.memory(tenant, user_id)
    live = sum(1 for n in memory.notes if n["valid_to"] is None) if memory else 0
    if live >= MAX_LIVE_NOTES:
        raise InputError("text", f"a user keeps at most {MAX_LIVE_NOTES} live notes")
    return _put(service, tenant, user_id, new_id("n_"), fields)


def edit_note(
    service: Service, tenant: str, user_id: str, note_id: str, changes: dict[str, Any]
) -> dict:
    """A new version of a note: the fields given replace the current ones, the old text goes
    to the note's history. 404 for an unknown note, ``Conflict`` for a superseded one."""
    note = _note(service, tenant, user_id, note_id)
    if note["valid_to"] is not None:
        raise Conflict(f"note {note_id!r} was superseded by {note['superseded_by']!r}")
    fields = {k: note[k] for k in ("text", "key", "source", "ttl_s", "pinned")}
    fields.update(changes)
    return _put(service, tenant, user_id, note_id, fields)


def delete_note(service: Service, tenant: str, user_id: str, note_id: str) -> None:
    """Forget a note and its history; 404 for an unknown note."""
    _note(service, tenant, user_id, note_id)
    payload = ProfilePayload("note_delete", note_id=note_id).to_dict()
    _apply(service, tenant, user_id, payload)


def _put(service: Service, tenant: str, user_id: str, note_id: str, fields: dict) -> dict:
    payload = ProfilePayload("note", note_id=note_id, **fields).to_dict()
    _apply(service, tenant, user_id, payload)
    return view(_note(service, tenant, user_id, note_id), time.time())


def _apply(service: Service, tenant: str, user_id: str, payload: dict[str, Any]) -> None:
    event = Event("profile", new_id("p_"), tenant, user_id, time.time(), payload)
    service.lane(tenant).backend.log_applied(event)


def _note(service: Service, tenant: str, user_id: str, note_id: str) -> dict[str, Any]:
    memory = service.memory(tenant, user_id)
    for note in memory.notes if memory else ():
        if note["note_id"] == note_id:
            return note
    raise NotFound(f"unknown note {note_id!r} for user {user_id!r}")
