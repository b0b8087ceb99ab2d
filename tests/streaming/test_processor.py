"""The processor: joins, idempotence, the wait window, pairwise, profile ops, state transfer."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import ContextSpec, Engine
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor

CTX = [1.0, 0.5] + [0.0] * (ContextSpec().n_columns - 2)
KEY = "acme/ana"


def make(**params: object) -> Processor:
    return Processor(Engine(random_state=0), RewardComposer(), **params)  # type: ignore[arg-type]


def dec(did: str, arm: int = 3, ts: float = 0.0, user: str = "ana") -> Event:
    return Event("decision", did, "acme", user, ts, {"arm": arm, "context": CTX})


def fb(eid: str, did: str, ts: float = 1.0, **payload: object) -> Event:
    return Event(
        "feedback",
        eid,
        "acme",
        "ana",
        ts,
        {"decision_id": did, **(payload or {"kind": "thumbs", "value": "up"})},
    )


def prof(eid: str, **payload: object) -> Event:
    return Event("profile", eid, "acme", "ana", 1.0, dict(payload))


def test_feedback_joins_its_decision_and_applies_once() -> None:
    p = make()
    assert p.apply([dec("d1"), fb("f1", "d1"), fb("f1", "d1")]) == {KEY}
    p.apply([fb("f1", "d1")])
    c = p.counters(KEY)
    assert (c["decisions"], c["feedback_events"], c["by_kind"]) == (1, 1, {"thumbs": 1})
    assert int(p.engine.users.n_feedback[p.engine.users.ids[KEY]]) == 1


def test_applying_equals_sequential_learning() -> None:
    p = make()
    p.apply([dec("d1", arm=5), fb("f1", "d1", kind="rating", value=4)])
    ref = Engine(random_state=0)
    from bandit import Feedback

    ref.learn([Feedback(KEY, 5, 0.75, np.array(CTX))])
    np.testing.assert_allclose(p.engine.users.get(KEY)["B"], ref.users.get(KEY)["B"])


BAD = [
    (fb("f1", "nope"), "decision_id: unknown decision"),
    (fb("f2", "d1", kind="pairwise", other_decision_id="zz"), "other_decision_id"),
    (fb("f3", "d1", kind="rating", value=9), "value"),
    (Event("decision", "d9", "acme", "ana", 0.0, {"arm": 10_000, "context": CTX}), "arm"),
    (Event("decision", "d8", "acme", "ana", 0.0, {"arm": 1, "context": [1.0]}), "context"),
    (prof("p1", op="shout"), "op"),
    (prof("p2", op="pin", pins={"length": "epic"}), "epic"),
]


@pytest.mark.parametrize(("event", "reason"), BAD)
def test_bad_events_are_rejected_not_raised(event: Event, reason: str) -> None:
    p = make()
    p.apply([dec("d1")])
    p.apply([event])
    [(rejected, why)] = p.rejected
    assert rejected is event and reason in why


def test_the_wait_window_gives_the_default_reward_once() -> None:
    p = make(wait_window_s=10.0, default_reward=0.0)
    p.apply([dec("d1", ts=0.0), dec("d2", ts=0.0), dec("d3", ts=8.0), fb("f1", "d2")])
    assert p.expire(5.0) == set()
    assert p.expire(11.0) == {KEY}  # d1 only: d2 got feedback, d3 is still young
    assert p.counters(KEY)["default_rewards"] == 1
    assert p.expire(100.0) == {KEY}  # d3
    assert p.expire(1000.0) == set()
    assert p.counters(KEY)["default_rewards"] == 2


def test_pairwise_prefers_the_winner() -> None:
    p = make()
    p.apply([dec("d1", arm=0), dec("d2", arm=100)])
    for i in range(20):
        p.apply([fb(f"f{i}", "d1", kind="pairwise", other_decision_id="d2")])
    prefs = p.engine.profile(KEY)["preferences"]
    a, b = p.engine.catalog.levels_of(0), p.engine.catalog.levels_of(100)
    dim = next(d for d in a if a[d] != b[d])
    levels = prefs[dim]["levels"]
    assert levels[a[dim]]["score"] > levels[b[dim]]["score"]


def test_profile_ops_pin_unpin_note_delete() -> None:
    p = make()
    p.apply([prof("p1", op="pin", pins={"length": "brief", "tone": "warm"})])
    assert p.engine.pins[KEY] == {"length": "brief", "tone": "warm"}
    p.apply([prof("p2", op="unpin", dimensions=["tone"])])
    assert p.engine.pins[KEY] == {"length": "brief"}
    p.apply(
        [
            Event(
                "profile",
                "n1",
                "acme",
                "ana",
                5.0,
                {"op": "note", "note_id": "lang", "text": "uses Rust", "ttl_s": 10},
            ),
            Event(
                "profile",
                "n0",
                "acme",
                "ana",
                2.0,
                {"op": "note", "note_id": "lang", "text": "uses Go"},
            ),
        ]
    )
    [note] = p.notes(KEY, now=6.0)
    assert note["text"] == "uses Rust"  # the older note does not supersede the newer
    assert p.notes(KEY, now=20.0) == []
    p.apply([prof("p3", op="delete")])
    assert KEY not in p.engine.users and KEY not in p.engine.pins and p.export_user(KEY) is None


def test_export_import_round_trip_keeps_everything() -> None:
    p = make(wait_window_s=10.0)
    p.apply([dec("d1"), dec("d2"), fb("f1", "d1"), prof("p1", op="pin", pins={"depth": "expert"})])
    data = p.export_user(KEY)
    assert data is not None
    q = make(wait_window_s=10.0)
    q.import_user(KEY, data)
    for name, arr in p.engine.users.get(KEY).items():
        np.testing.assert_array_equal(q.engine.users.get(KEY)[name], arr)
    assert q.engine.pins[KEY] == {"depth": "expert"}
    assert q.counters(KEY) == p.counters(KEY)
    assert q.apply([fb("f1", "d1")]) == set()  # seen before the export
    assert q.counters(KEY)["feedback_events"] == 1
    assert q.expire(100.0) == {KEY}  # the open decision d2 came along
    q.import_user(KEY, None)
    assert KEY not in q.engine.users


def test_shared_model_round_trip() -> None:
    p = make()
    p.apply([dec("d1"), fb("f1", "d1")])
    mine = p.engine.shared.export("acme")
    assert np.abs(mine["mean"]).sum() > 0 and np.abs(mine["info"]).sum() > 0
    q = make()
    q.import_shared(0, p.export_shared(0))
    # the whole posterior travels: a restored worker takes the same next step
    for name, arr in mine.items():
        np.testing.assert_array_equal(q.engine.shared.export("acme")[name], arr)
    assert int(mine["updates"]) == 1


def test_a_replica_serves_the_sum_of_every_partitions_contribution() -> None:
    """Two partitions learn apart; a replica combining their records holds the posterior of
    all their feedback: the prior plus the sum of both contributions (natural parameters)."""
    zero, one = make(), make()
    zero.apply([dec("d1", arm=3), fb("f1", "d1")], partition=0)
    rated = Event(
        "feedback", "f2", "acme", "bo", 1.0, {"decision_id": "d2", "kind": "rating", "value": 2}
    )
    one.apply([dec("d2", arm=5, user="bo"), rated], partition=1)
    replica = Processor(Engine(random_state=0), RewardComposer(), combine_partitions=True)
    replica.import_shared(0, zero.export_shared(0))
    replica.import_shared(1, one.export_shared(1))
    a, b = zero.engine.shared.export("acme"), one.engine.shared.export("acme")
    got = replica.engine.shared.export("acme")
    np.testing.assert_allclose(got["info"], a["info"] + b["info"])
    np.testing.assert_allclose(got["info_mean"], a["info_mean"] + b["info_mean"])
    prior = np.eye(got["info"].shape[-1]) / replica.engine.config.shared_prior_sd**2
    expected = np.linalg.solve(prior[None] + got["info"], got["info_mean"][..., None])[..., 0]
    np.testing.assert_allclose(got["mean"], expected, atol=1e-12)
    assert int(got["updates"]) == 2
    # a partition's newer record replaces its older contribution, it is not added twice
    replica.import_shared(0, zero.export_shared(0))
    np.testing.assert_allclose(replica.engine.shared.export("acme")["info"], got["info"])


def test_import_replaces_pins_so_an_unpin_reaches_replicas() -> None:
    writer, replica = make(), make()
    writer.apply([dec("d1"), prof("p1", op="pin", pins={"length": "brief"})])
    replica.import_user(KEY, writer.export_user(KEY))
    assert replica.engine.pins[KEY] == {"length": "brief"}
    writer.apply([prof("p2", op="pin", pins={"length": None})])
    replica.import_user(KEY, writer.export_user(KEY))
    assert KEY not in replica.engine.pins


def _mixed_stream() -> list[Event]:
    """Synthetic traffic (decisions, feedback of every scalar kind, notes, deletes) with pin
    changes and pairwise feedback woven in, so batches are cut at every flush point."""
    from tests.loadgen import synthetic_events

    out: list[Event] = []
    last: dict[str, list[str]] = {}
    for i, e in enumerate(synthetic_events(3000, n_users=30, step_s=0.5, random_state=3)):
        out.append(e)
        if e.kind == "decision":
            ids = last.setdefault(e.user_id, [])
            ids.append(e.event_id)
            if len(ids) >= 2 and i % 7 == 0:
                payload = {"decision_id": ids[-1], "kind": "pairwise", "other_decision_id": ids[-2]}
                out.append(Event("feedback", f"w{i}", e.tenant, e.user_id, e.ts, payload))
        if i % 97 == 0:
            pins = {"length": "brief" if i % 2 else None}
            out.append(
                Event("profile", f"q{i}", e.tenant, e.user_id, e.ts, {"op": "pin", "pins": pins})
            )
    return out


def test_batched_learning_equals_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _mixed_stream()
    batched, single = make(wait_window_s=20.0), make(wait_window_s=20.0)
    sizes: list[int] = []
    learn = batched.engine.learn_arrays

    def counted(rows: np.ndarray, *args: np.ndarray) -> None:
        sizes.append(len(rows))
        learn(rows, *args)

    monkeypatch.setattr(batched.engine, "learn_arrays", counted)
    changed, watermark = batched.apply_log(events, partition=0, watermark=0.0)
    w = 0.0
    for event in events:  # one event per call: every row is learned on its own
        _, w = single.apply_log([event], partition=0, watermark=w)
    assert w == watermark and len(changed) > 20
    assert max(sizes) > 10 and len(sizes) < sum(sizes) / 3  # rows were learned in runs
    kinds = [single.counters(k) for k in changed]
    assert sum(c["default_rewards"] for c in kinds) > 0
    assert sum(c["by_kind"].get("pairwise", 0) for c in kinds) > 0
    for name, arr in single.engine.shared.export("acme").items():  # bit for bit
        np.testing.assert_array_equal(batched.engine.shared.export("acme")[name], arr)
    for key in changed:
        assert batched.export_record(key) == single.export_record(key), key  # bit for bit


def test_the_book_is_bounded_by_count_and_event_time() -> None:
    p = make(wait_window_s=10.0, max_seen=3, max_pending=100, horizon_s=50.0)
    p.apply([dec(f"d{i}", ts=float(i)) for i in range(5)])
    assert list(p.books[KEY].seen) == ["d2", "d3", "d4"]  # the last max_seen ids
    p.apply([fb("f1", "d0", ts=5.0)])
    p.expire(20.0)  # d1..d4 get the default reward: all settled now
    p.apply([dec("d9", ts=60.0)])  # d0..d4 are settled and older than the horizon
    assert list(p.pending(KEY)) == ["d9"]
    p.apply([fb("f2", "d1", ts=61.0)])
    [(_, why)] = p.rejected  # feedback later than the horizon is rejected
    assert "unknown decision" in why
    p.apply([dec("d3", ts=62.0)])  # out of the seen set: a resend is applied again
    assert p.counters(KEY)["decisions"] == 7


def test_open_decisions_outlive_the_horizon_until_settled() -> None:
    p = make(wait_window_s=1000.0, horizon_s=5.0)
    p.apply([dec("d1", ts=0.0), dec("d2", ts=100.0)])
    assert list(p.pending(KEY)) == ["d1", "d2"]  # d1 has no feedback yet: kept
