"""The SQLite store: offsets, idempotent appends, user erasure, checkpoints, the decision log."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit import Catalog, ContextSpec, SchemaError
from streaming.bus import ServingOptions, open_backend
from streaming.events import Event
from streaming.sqlite.backend import EmbeddedBackend
from streaming.sqlite.checkpoints import Checkpoints
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
