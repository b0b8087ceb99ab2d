"""Retention on the embedded store: what the compactor removes, and what it must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.events import Event
from streaming.retention import RetentionPolicy
from streaming.sqlite.checkpoints import Checkpoints
from streaming.sqlite.retention import Compactor
from streaming.sqlite.store import Store
from tests.streaming.sqlite.test_store import decision, fb

NOW = 10_000.0


def at(event: Event, ts: float) -> Event:
    return Event(event.kind, event.event_id, event.tenant, event.user_id, ts, event.payload)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "a.sqlite")
    yield s
    s.close()


def kinds(store: Store) -> list[tuple[str, str]]:
    return [(e.kind, e.event_id) for e in store.iter_events()]


def test_settled_old_rows_go_recent_and_unreplayed_ones_stay(store: Store) -> None:
    pin = Event("profile", "p1", "acme", "ana", 100.0, {"op": "pin", "pins": {"tone": "warm"}})
    store.append(
        [
            at(decision("d1"), 100.0),  # old, settled: goes
            at(fb("f1", "d1"), 110.0),  # old: goes
            pin,  # profile events stay
            at(decision("d2"), NOW - 30),  # inside the wait window: not settled, stays
            at(fb("f2", "d2"), NOW - 10),  # recent: stays
            at(decision("d3"), 200.0),  # old, but after the replay offset: stays
        ]
    )
    Checkpoints(store).save({}, {}, offset=5)
    policy = RetentionPolicy(decisions_s=60, feedback_s=60, dead_letters_s=60)
    compactor = Compactor(store, policy, wait_window_s=120, clock=lambda: NOW)
    assert compactor.run_once() == 2
    assert kinds(store) == [
        ("profile", "p1"),
        ("decision", "d2"),
        ("feedback", "f2"),
        ("decision", "d3"),
    ]
    # Offsets are never reused: the next event comes after everything ever stored.
    assert store.append([decision("d4")]) == [7]


def test_zero_keeps_forever_and_dead_letters_expire(store: Store) -> None:
    store.append([at(decision("d1"), 1.0), at(fb("f1", "d1"), 2.0)])
    store._db.execute("UPDATE events SET body='{\"kind\":' WHERE event_id='f1'")
    assert kinds(store) == [("decision", "d1")]  # the bad row is quarantined on read
    Checkpoints(store).save({}, {}, offset=2)
    forever = RetentionPolicy(decisions_s=0, feedback_s=0, dead_letters_s=0)
    assert Compactor(store, forever, wait_window_s=1, clock=lambda: NOW).run_once() == 0
    [(reason,)] = store.query("SELECT reason FROM quarantine")
    assert "undecodable event" in reason
    later = RetentionPolicy(decisions_s=0, feedback_s=0, dead_letters_s=60)
    assert Compactor(store, later, wait_window_s=1, clock=lambda: 1e12).run_once() == 1
    assert store.query("SELECT COUNT(*) FROM quarantine") == [(0,)]
    assert kinds(store) == [("decision", "d1")]


def test_many_rows_go_in_windows(store: Store) -> None:
    store.append([at(decision(f"d{i}", user=f"u{i % 7}"), float(i)) for i in range(5000)])
    Checkpoints(store).save({}, {}, offset=5000)
    policy = RetentionPolicy(decisions_s=1, feedback_s=1)
    assert Compactor(store, policy, wait_window_s=1, clock=lambda: 4000.0).run_once() == 3999
    assert [e.event_id for e in store.iter_events()][:2] == ["d3999", "d4000"]
