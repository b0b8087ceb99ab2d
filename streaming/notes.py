"""A user's memory notes as the processor keeps them in the user's book, with their history.

A note is text the user or the product stored (or the product inferred), with an optional
``key`` (``background``, ``preferred_language``), a ``source``, a time to live and a
``pinned`` flag (always retrieved). Everything here runs inside the processor, in log order
and on event time, so every worker and replica holds the same notes:

- a new note whose key a live note already has supersedes it: the older note stays, with
  ``valid_to`` and ``superseded_by`` set, and is no longer retrieved;
- an edit (the same ``note_id`` again) keeps the earlier text in the note's ``history``; a
  version with an older event time than the note's current one is ignored (replicas' clocks
  differ);
- an expired note stops being retrieved at once (``live``) and is deleted by the next expiry
  sweep (``purge_expired``); a deleted note is gone with its history.

Notes are plain JSON objects (``streaming.user_record`` encodes the book).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from streaming.payloads import ProfilePayload

MAX_LIVE_NOTES = 1000  # per user
MAX_SUPERSEDED = 200  # superseded notes kept per user, the most recently superseded
MAX_VERSIONS = 20  # earlier versions kept per note

Notes = MutableMapping[str, dict[str, Any]]


def is_live(note: dict[str, Any], now: float) -> bool:
    """Not superseded and not expired at ``now``."""
    expires = note["expires"]
    return note["valid_to"] is None and (expires is None or expires > now)


def live(notes: Notes, now: float) -> Iterator[dict[str, Any]]:
    return (n for n in notes.values() if is_live(n, now))


def put_note(notes: Notes, p: ProfilePayload, ts: float) -> None:
    """Add a note, or a new version of one (``p.note_id`` known); ValueError naming the field
    for an edit of a superseded note or a user over ``MAX_LIVE_NOTES``."""
    assert p.note_id is not None and p.text is not None  # checked by the payload
    old = notes.get(p.note_id)
    if old is not None and old["updated"] > ts:
        return
    if old is not None and old["valid_to"] is not None:
        raise ValueError(f"note_id: note {p.note_id!r} was superseded; add a new note instead")
    if old is None and sum(1 for n in notes.values() if n["valid_to"] is None) >= MAX_LIVE_NOTES:
        raise ValueError(f"notes: a user keeps at most {MAX_LIVE_NOTES} live notes")
    history = [] if old is None else old["history"]
    if old is not None:
        history.append(
            {
                "text": old["text"],
                "version": old["version"],
                "valid_from": old["updated"],
                "valid_to": ts,
            }
        )
        del history[:-MAX_VERSIONS]
    if p.key is not None:
        _supersede(notes, p.key, p.note_id, ts)
    notes[p.note_id] = {
        "note_id": p.note_id,
        "text": p.text,
        "key": p.key,
        "source": p.source,
        "pinned": p.pinned,
        "ttl_s": p.ttl_s,
        "created": ts if old is None else old["created"],
        "updated": ts,
        "expires": ts + p.ttl_s if p.ttl_s else None,
        "version": 1 if old is None else old["version"] + 1,
        "valid_to": None,
        "superseded_by": None,
        "history": history,
    }


def _supersede(notes: Notes, key: str, by: str, ts: float) -> None:
    """End the validity of the other current notes with ``key``; keep the newest
    ``MAX_SUPERSEDED`` superseded notes."""
    for other in notes.values():
        if other["key"] == key and other["note_id"] != by and other["valid_to"] is None:
            other["valid_to"] = ts
            other["superseded_by"] = by
    ended = [n for n in notes.values() if n["valid_to"] is not None]
    if len(ended) > MAX_SUPERSEDED:
        ended.sort(key=lambda n: (n["valid_to"], n["note_id"]))
        for n in ended[: len(ended) - MAX_SUPERSEDED]:
            del notes[n["note_id"]]


def view(note: dict[str, Any], now: float) -> dict[str, Any]:
    """A note as the API shows it: its fields, its ``status`` at ``now`` (``live``,
    ``superseded`` or ``expired``) and its earlier versions."""
    if note["valid_to"] is not None:
        status = "superseded"
    else:
        status = "live" if is_live(note, now) else "expired"
    return {
        "note_id": note["note_id"],
        "text": note["text"],
        "key": note["key"],
        "source": note["source"],
        "pinned": note["pinned"],
        "ttl_s": note["ttl_s"],
        "status": status,
        "version": note["version"],
        "created_at": note["created"],
        "updated_at": note["updated"],
        "expires_at": note["expires"],
        "valid_to": note["valid_to"],
        "superseded_by": note["superseded_by"],
        "history": [dict(h) for h in note["history"]],
    }


def delete_note(notes: Notes, note_id: str) -> None:
    if notes.pop(note_id, None) is None:
        raise ValueError(f"note_id: unknown note {note_id!r}")


def purge_expired(notes: Notes, now: float) -> bool:
    """Delete the notes expired at ``now``; returns whether any was."""
    gone = [k for k, n in notes.items() if n["expires"] is not None and n["expires"] <= now]
    for k in gone:
        del notes[k]
    return bool(gone)


def upgrade(notes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Notes of a book written before keys and history (``text``, ``ts``, ``expires`` and
    ``version`` only) in today's shape."""
    out = {}
    for note_id, n in notes.items():
        if "valid_to" in n:
            out[note_id] = n
            continue
        out[note_id] = {
            "note_id": note_id,
            "text": n["text"],
            "key": None,
            "source": "product",
            "pinned": False,
            "ttl_s": None if n.get("expires") is None else n["expires"] - n["ts"],
            "created": n["ts"],
            "updated": n["ts"],
            "expires": n.get("expires"),
            "version": n.get("version", 1),
            "valid_to": None,
            "superseded_by": None,
            "history": [],
        }
    return out
