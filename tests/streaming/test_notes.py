"""Notes and the pause in the processor: log order, event time, replays and state transfer."""

from __future__ import annotations

import numpy as np

from streaming.events import Event
from tests.streaming.test_processor import KEY, dec, fb, make


def note(eid: str, ts: float, **payload: object) -> Event:
    return Event("profile", eid, "acme", "ana", ts, {"op": "note", **payload})


def test_supersede_edit_delete_and_expiry_on_event_time() -> None:
    p = make(wait_window_s=100.0)
    events = [
        dec("d0", ts=0.0),
        note("e1", 1.0, note_id="a", text="student", key="background"),
        note("e2", 2.0, note_id="b", text="engineer", key="background", ttl_s=50),
        note("e3", 3.0, note_id="c", text="likes cats", pinned=True),
        note("e4", 4.0, note_id="c", text="likes dogs", pinned=True),
        Event("profile", "e5", "acme", "ana", 5.0, {"op": "note_delete", "note_id": "zz"}),
    ]
    changed, _ = p.apply_log(events, partition=0, watermark=0.0)
    assert changed == {KEY}
    book = p.books[KEY]
    assert book.notes["a"]["valid_to"] == 2.0 and book.notes["a"]["superseded_by"] == "b"
    assert book.notes["c"]["history"][0]["text"] == "likes cats"
    assert [r for e, r in p.rejected] == ["note_id: unknown note 'zz'"]
    memory = p.memory[KEY]
    assert [h.note.note_id for h in memory.retrieve("an engineer", now=10.0)] == ["b", "c"]
    assert [h.note.note_id for h in memory.retrieve("an engineer", now=60.0)] == ["c"]
    # The expiry sweep runs on event time: the next event past 52 s deletes the note.
    p.apply_log([dec("d1", ts=60.0)], partition=0, watermark=5.0)
    assert set(p.books[KEY].notes) == {"a", "c"}
    p.apply([Event("profile", "e6", "acme", "ana", 61.0, {"op": "note_delete", "note_id": "c"})])
    assert set(p.books[KEY].notes) == {"a"} and p.memory[KEY].index.notes == ()


def test_notes_and_pause_travel_with_the_user_record() -> None:
    p = make()
    p.apply([dec("d0"), note("e1", 1.0, note_id="a", text="x y", ttl_s=9, key="k")])
    p.apply([Event("profile", "e2", "acme", "ana", 2.0, {"op": "pause"})])
    for data in (p.export_user(KEY), p.export_record(KEY)):
        q = make()
        assert data is not None
        q.import_user(KEY, data)
        assert q.books[KEY].notes == p.books[KEY].notes and q.books[KEY].paused
        assert q.memory[KEY].paused and q.memory[KEY].notes == p.memory[KEY].notes
        q.expire(20.0)  # the restored expiry heap deletes the note on time
        assert q.books[KEY].notes == {}


def test_a_paused_user_is_counted_but_not_learned_from() -> None:
    p = make(wait_window_s=10.0)
    p.apply([dec("d0"), Event("profile", "e1", "acme", "ana", 0.5, {"op": "pause"})])
    before = p.engine.users.get(KEY)
    p.apply([dec("d1", ts=1.0), fb("f0", "d0"), fb("f1", "d1", kind="rating", value=5)])
    p.expire(100.0)
    after = p.engine.users.get(KEY)
    np.testing.assert_array_equal(after["B"], before["B"])
    np.testing.assert_array_equal(after["A"], before["A"])
    assert p.counters(KEY)["feedback_events"] == 2
    # Resumed: feedback on a decision made while paused still teaches nothing; new ones do.
    p.apply([Event("profile", "e2", "acme", "ana", 2.0, {"op": "resume"}), dec("d2", ts=2.0)])
    p.apply([fb("f2", "d1", ts=3.0), fb("f3", "d2", ts=3.0)])
    assert not np.array_equal(p.engine.users.get(KEY)["B"], before["B"])
    assert p.books[KEY].pending["d1"].get("paused") and "paused" not in p.books[KEY].pending["d2"]
