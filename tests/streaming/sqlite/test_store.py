"""The SQLite store: offsets, idempotent appends, user erasure, checkpoints, the decision log."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bandit import Catalog, ContextSpec, SchemaError
from streaming.bus import ServingOptions, open_backend
from streaming.events import Event
from streaming.sqlite.backend import EmbeddedBackend
from streaming.sqlite.checkpoints import Checkpoints
from streaming.sqlite.recent import RecentDecisions
from streaming.sqlite.store import Store


def decision(did: str, user: str = "ana", tenant: str = "acme") -> Event:
    return Event(
        "decision",
        did,
        tenant,
        user,
        1.0,
        {
            "decision_id": did,
            "arm": 2,
            "propensity": 0.25,
            "action_dist": [0.25] * 4,
            "context": [1.0] + [0.0] * (ContextSpec().n_columns - 1),
            "audit": {"g": "a"},
            "policy": "lints",
        },
    )


def fb(eid: str, did: str, user: str = "ana", **payload: object) -> Event:
    return Event(
        "feedback",
        eid,
        "acme",
        user,
        2.0,
        {"decision_id": did, **(payload or {"kind": "thumbs", "value": "up"})},
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "a.sqlite")
    yield s
    s.close()


def test_offsets_increase_and_duplicates_are_not_stored(store: Store) -> None:
    assert store.append([decision("d1"), fb("f1", "d1")]) == [1, 2]
    assert store.append([fb("f1", "d1")], durable=False) == [None]
    assert [off for off, _ in store.read(0)] == [1, 2]
    assert [e.event_id for _, e in store.read(1)] == ["f1"]
    assert store.last_offset() == 2


def test_offsets_are_never_reused_after_a_delete(store: Store) -> None:
    store.append([decision("d1"), decision("d2", "bo")])
    store.delete_user("acme", "bo")
    assert store.append([decision("d3")]) == [3]


def test_delete_user_erases_only_that_user_of_that_tenant(store: Store) -> None:
    store.append(
        [decision("d1"), fb("f1", "d1"), decision("d2", "bo"), decision("d3", tenant="beta")]
    )
    checkpoints = Checkpoints(store)
    checkpoints.save({"acme/ana": b"{}", "acme/bo": b"{}"}, {}, 4)
    assert store.delete_user("acme", "ana") == 2
    assert checkpoints.state("acme/ana") is None and checkpoints.state("acme/bo") == b"{}"
    assert {(e.tenant, e.user_id) for e in store.iter_events()} == {("acme", "bo"), ("beta", "ana")}


def test_checkpoint_saves_state_shared_and_offset_together(store: Store) -> None:
    store.append([decision("d1"), Event("profile", "x1", "acme", "bo", 3.0, {"op": "delete"})])
    checkpoints = Checkpoints(store)
    checkpoints.save({"acme/ana": b"state", "acme/gone": None}, {0: b"W"}, 2)
    assert checkpoints.offset() == 2
    assert dict(checkpoints.states()) == {"acme/ana": b"state"}
    assert checkpoints.shared() == {0: b"W"}
    # the applied tombstone is gone from the log, the decision is not
    assert [e.kind for e in store.iter_events()] == ["decision"]


def test_each_checkpoint_removes_the_tombstones_applied_since_the_last(store: Store) -> None:
    # A save looks only at the log after the previous save's offset: a tombstone past one
    # save's offset goes at the next, whatever came between.
    def tomb(i: int) -> Event:
        return Event("profile", f"x{i}", "acme", f"u{i}", 3.0, {"op": "delete"})

    store.append([decision("d1"), tomb(1), tomb(2)])
    checkpoints = Checkpoints(store)
    checkpoints.save({}, {}, 2)
    assert [e.event_id for e in store.iter_events()] == ["d1", "x2"]
    store.append([decision("d2"), tomb(3)])
    checkpoints.save({}, {}, 4)
    assert [e.event_id for e in store.iter_events()] == ["d1", "d2", "x3"]
    checkpoints.save({}, {}, 5)
    assert [e.event_id for e in store.iter_events()] == ["d1", "d2"]


def _append_from_threads(store: Store, n: int) -> list[Any]:
    """``n`` threads each append one durable feedback at once; what each got (offsets or
    the exception it raised)."""
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = store.append([fb(f"f{i}", "d1", user=f"u{i}")])
        except sqlite3.Error as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _slow_commits(store: Store, fail: bool = False) -> list[int]:
    """Make each durable commit of ``store`` slow (or fail); returns the list its commits are
    counted in."""
    commits: list[int] = []
    inner = store._transaction_locked

    @contextmanager
    def slow(*, durable: bool) -> Iterator[sqlite3.Cursor]:
        with inner(durable=durable) as cur:
            yield cur
            if durable:
                commits.append(1)
                time.sleep(0.05)  # while this commit runs, the other appends line up
                if fail:
                    raise sqlite3.OperationalError("database or disk is full")

    store._transaction_locked = slow  # type: ignore[method-assign]
    return commits


def test_durable_appends_arriving_together_share_a_commit(store: Store) -> None:
    commits = _slow_commits(store)
    results = _append_from_threads(store, 8)
    offsets = [offset for [offset] in results]
    assert sorted(offsets) == list(range(1, 9))  # each its own offset, all stored
    assert len(commits) < 8
    assert {e.user_id for e in store.iter_events()} == {f"u{i}" for i in range(8)}


def test_a_failed_shared_commit_fails_every_append_in_it(store: Store) -> None:
    _slow_commits(store, fail=True)
    results = _append_from_threads(store, 4)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert list(store.iter_events()) == [] and not store.writable


def test_decision_log_uses_ope_names(store: Store) -> None:
    store.append(
        [
            decision("d1"),
            decision("d2"),
            fb("f1", "d1", kind="rating", value=4),
            fb("f2", "d1", kind="pairwise", other_decision_id="d2"),
        ]
    )
    rows = {r["decision_id"]: r for r in store.decision_log(tenant="acme")}
    assert rows["d1"]["reward"] == 0.75 and rows["d1"]["has_feedback"]
    assert rows["d2"]["reward"] == 0.5 and not rows["d2"]["has_feedback"]
    r = rows["d1"]
    width = ContextSpec().n_columns
    assert (r["action"], r["pscore"], len(r["context"]), r["audit"]) == (2, 0.25, width, {"g": "a"})
    assert {"context", "action", "reward", "pscore", "action_dist", "user_id", "ts"} <= set(r)


def test_iter_events_filters(store: Store) -> None:
    store.append([decision("d1"), fb("f1", "d1"), decision("d2", tenant="beta")])
    assert [e.event_id for e in store.iter_events(kinds=["feedback"])] == ["f1"]
    assert [e.event_id for e in store.iter_events(tenant="beta")] == ["d2"]
    assert len(list(store.iter_events(batch=1))) == 3


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    s = Store(tmp_path / "v.sqlite")
    s._db.execute("UPDATE meta SET value='99' WHERE name='schema_version'")
    s.close()
    with pytest.raises(SchemaError, match="version 99"):
        Store(tmp_path / "v.sqlite")


def test_the_bus_url_picks_the_backend(tmp_path: Path) -> None:
    options = ServingOptions(Catalog.default(), data_dir=tmp_path)
    backend = open_backend(f"sqlite:///{tmp_path}/b.sqlite", options)
    assert isinstance(backend, EmbeddedBackend)
    assert backend.log(decision("d1"))
    assert backend.store.last_offset() == 1
    backend.store.close()
    with pytest.raises(ValueError, match="allowed: sqlite://, kafka://"):
        open_backend("redis://localhost", options)


def test_event_ids_are_unique_per_user_not_per_tenant(store: Store) -> None:
    assert store.append([fb("same", "d1", user="ana"), fb("same", "d2", user="bo")]) == [1, 2]
    assert store.append([fb("same", "d1", user="ana")]) == [None]
    got = store.get_event("acme", "same", user_id="bo")
    assert got is not None and got.payload["decision_id"] == "d2"


def test_a_version_1_file_is_migrated_keeping_offsets(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE events (
            offset INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant TEXT NOT NULL, event_id TEXT NOT NULL, user_id TEXT NOT NULL,
            kind TEXT NOT NULL, ts REAL NOT NULL, body TEXT NOT NULL,
            UNIQUE (tenant, event_id)
        );
        CREATE INDEX events_user ON events (tenant, user_id);
        """
    )
    for i in (1, 2, 3):
        e = fb(f"f{i}", "d1")
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (i, e.tenant, e.event_id, e.user_id, e.kind, e.ts, e.to_bytes().decode()),
        )
    db.execute("DELETE FROM events WHERE offset=3")  # the newest row is gone; its offset too
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert store.query("SELECT value FROM meta WHERE name='schema_version'") == [("2",)]
        assert [e.event_id for e in store.iter_events()] == ["f1", "f2"]
        assert store.append([fb("f1", "d1", user="bo")]) == [4]
    finally:
        store.close()


def test_a_full_disk_rolls_back_and_the_next_write_works_when_space_returns(store: Store) -> None:
    store.append([decision("d0")])
    [(pages,)] = store.query("PRAGMA page_count")
    store._db.execute(f"PRAGMA max_page_count={pages + 2}")
    big = [fb(f"f{i}", "d0", pad="x" * 4000) for i in range(40)]
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.append(big)
    assert not store._db.in_transaction and not store.writable
    # The connection is not left inside the failed transaction: other writes go through.
    assert store.delete_user("acme", "ana") == 1
    store._db.execute("PRAGMA max_page_count=1073741823")
    assert store.append(big[:1]) == [2] and store.writable


def test_queued_decisions_survive_a_full_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.sqlite", flush_interval_s=0.002)
    try:
        store.append([decision("d0")])
        [(pages,)] = store.query("PRAGMA page_count")
        store._db.execute(f"PRAGMA max_page_count={pages + 1}")
        store.append_later([decision(f"d{i}", user=f"u{i}") for i in range(1, 300)])
        time.sleep(0.3)  # the flusher fails, backs off and keeps its rows
        assert store._flusher is not None and store._flusher.is_alive()
        assert not store.writable and store.last_offset() == 1
        # Still known by id while queued (feedback on it then gets 503, not 404).
        got = store.get_event("acme", "d7", kind="decision", user_id="u7")
        assert got is not None and got.user_id == "u7"
        assert store.get_event("acme", "d7", kind="feedback") is None
        assert store.get_event("acme", "d7", user_id="u8") is None
        store._db.execute("PRAGMA max_page_count=1073741823")
        deadline = time.monotonic() + 5
        while store.last_offset() < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.event_id for e in store.iter_events()] == [f"d{i}" for i in range(300)]
        assert store.writable
    finally:
        store.close()


def test_queued_decisions_are_committed_without_a_reader(tmp_path: Path) -> None:
    """The flusher commits appends within its interval, while they keep coming and after a
    pause (the next append wakes it): a connection of its own sees them, with no read of the
    store committing the queue first."""
    store = Store(tmp_path / "f.sqlite", flush_interval_s=0.005)

    def soon(check: Any) -> bool:
        deadline = time.monotonic() + 5
        while not check() and time.monotonic() < deadline:
            time.sleep(0.002)
        return bool(check())

    try:
        for burst in range(1, 4):
            for i in range(20):
                store.append_later([decision(f"d{burst}-{i}", user=f"u{i}")])
                time.sleep(0.001)
            rows = 20 * burst
            assert soon(lambda n=rows: len(store.snapshot.query("SELECT 1 FROM events")) == n)
            time.sleep(0.05)  # nothing comes: the flusher waits for the next append
    finally:
        store.close()


def test_a_queued_event_that_cannot_be_encoded_is_left_out_not_retried_forever(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Queued events are encoded by the flusher: one it cannot encode is logged and dropped,
    and the events around it are committed (kept, it would fail every later commit)."""
    bad = decision("bad")
    bad.payload["audit"] = {"g": object()}  # neither orjson nor the standard library takes it
    store.append_later([decision("d1"), bad, decision("d2", user="bo")])
    store.flush()
    assert [e.event_id for _, e in store.read(0)] == ["d1", "d2"]
    assert "cannot be encoded" in caplog.text
    store.append_later([decision("d3")])
    store.flush()
    assert [e.event_id for _, e in store.read(0)] == ["d1", "d2", "d3"]


def test_feedback_finds_its_decision_in_memory_before_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = open_backend(
        f"sqlite:///{tmp_path}/h.sqlite", ServingOptions(Catalog.default(), data_dir=tmp_path)
    )
    assert isinstance(backend, EmbeddedBackend)
    try:
        backend.log_decisions([decision("held"), decision("queued", user="bo")])
        backend.learner.step()  # the learner applies both: their users' books hold them
        reads: list[str] = []
        get_event = backend.store.get_event

        def counting(tenant: str, event_id: str, *args: Any, **kwargs: Any) -> Any:
            reads.append(event_id)
            return get_event(tenant, event_id, *args, **kwargs)

        monkeypatch.setattr(backend.store, "get_event", counting)
        assert backend.has_decision("acme", "ana", "held")  # logged lately
        backend.recent = RecentDecisions()  # as after a restart: the books answer
        assert backend.has_decision("acme", "ana", "held")
        assert reads == []
        backend.processor.books["acme/bo"].pending.clear()  # as if settled and forgotten
        assert backend.has_decision("acme", "bo", "queued")  # the store has it
        assert not backend.has_decision("acme", "ana", "never")
        assert not backend.has_decision("acme", "bo", "held")  # another user's decision
        assert reads == ["queued", "never", "held"]
    finally:
        backend.store.close()


def test_an_erased_users_decisions_are_not_found_afterwards(tmp_path: Path) -> None:
    backend = open_backend(
        f"sqlite:///{tmp_path}/e.sqlite", ServingOptions(Catalog.default(), data_dir=tmp_path)
    )
    assert isinstance(backend, EmbeddedBackend)
    backend.start()
    try:
        backend.log_decisions([decision("d1"), decision("d2", user="bo")])
        assert backend.has_decision("acme", "ana", "d1")
        backend.erase(Event("profile", "x1", "acme", "ana", 3.0, {"op": "delete"}))
        assert not backend.has_decision("acme", "ana", "d1")
        assert backend.has_decision("acme", "bo", "d2")
    finally:
        backend.stop()
