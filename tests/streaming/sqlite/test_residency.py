"""Users leave memory when idle and come back from the store exactly as they left."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bandit import ContextSpec, Engine
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor
from streaming.sqlite.learner import Learner
from streaming.sqlite.residency import Residency
from streaming.sqlite.store import Store

CTX = [1.0] + [0.0] * (ContextSpec().n_columns - 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(path: Path, clock: Clock, max_users: int = 2) -> tuple[Learner, Engine]:
    serving = Engine(random_state=1)
    proc = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=1e6)
    residency = Residency(max_users, idle_s=1e9, min_idle_s=1.0, clock=clock)
    lr = Learner(Store(path), proc, serving=serving, residency=residency)
    return lr, serving


def turn(user: str, i: int, *, feedback: bool = True) -> list[Event]:
    d = Event("decision", f"d{i}", "acme", user, float(i), {"arm": i % 5, "context": CTX})
    f = Event(
        "feedback",
        f"f{i}",
        "acme",
        user,
        float(i),
        {"decision_id": f"d{i}", "kind": "reward", "value": (i % 3) / 2},
    )
    return [d, f] if feedback else [d]


def apply(lr: Learner, events: list[Event]) -> None:
    lr.store.append(events)
    while lr.step():
        pass


def test_idle_users_leave_both_engines_and_come_back_unchanged(tmp_path: Path) -> None:
    clock = Clock()
    lr, serving = make(tmp_path / "a.sqlite", clock)
    lr.recover()
    users = [f"u{i}" for i in range(5)]
    for i, user in enumerate(users):
        apply(lr, turn(user, i))
    before = {f"acme/{u}": lr.processor.export_user(f"acme/{u}") for u in users}
    assert lr.evict() == 0  # unsaved: nobody may leave yet
    lr.checkpoint(full=True)
    clock.now = 10.0
    assert lr.evict() == 3  # the cap is 2: the three least recently used leave
    assert sorted(lr.processor.books) == ["acme/u3", "acme/u4"]
    assert sorted(serving.users.ids) == ["acme/u3", "acme/u4"]
    assert lr.load(before) == ["acme/u0", "acme/u1", "acme/u2"]
    assert {k: lr.processor.export_user(k) for k in before} == before
    lr.store.close()


def test_a_user_with_an_open_decision_stays(tmp_path: Path) -> None:
    clock = Clock()
    lr, _ = make(tmp_path / "b.sqlite", clock, max_users=1)
    lr.recover()
    apply(lr, turn("open", 0, feedback=False))
    apply(lr, turn("done", 1))
    lr.checkpoint(full=True)
    clock.now = 10.0
    lr.evict()
    assert "acme/open" in lr.processor.books  # waiting for feedback or the default reward
    assert "acme/done" in lr.processor.books  # within the cap once "open" had to stay
    lr.store.close()


def test_learning_after_leaving_equals_never_leaving(tmp_path: Path) -> None:
    clock = Clock()
    evicting, _ = make(tmp_path / "c.sqlite", clock, max_users=1)
    keeping, _ = make(tmp_path / "d.sqlite", clock, max_users=1000)
    for lr in (evicting, keeping):
        lr.recover()
    for i in range(40):
        events = turn(f"u{i % 4}", i)
        for lr in (evicting, keeping):
            apply(lr, events)
            lr.checkpoint(full=True)
        clock.now += 2.0
        evicting.evict()
    assert evicting.evicted > 20
    keys = [f"acme/u{i}" for i in range(4)]
    evicting.load(keys)
    assert {k: evicting.processor.export_user(k) for k in keys} == {
        k: keeping.processor.export_user(k) for k in keys
    }
    # ... and after a crash and a recovery, too.
    apply(evicting, turn("u1", 100))
    evicting.store.close()
    again, _ = make(tmp_path / "c.sqlite", clock, max_users=1)
    again.recover()
    apply(keeping, turn("u1", 100))
    again.load(keys)
    assert {k: again.processor.export_user(k) for k in keys} == {
        k: keeping.processor.export_user(k) for k in keys
    }
    for lr in (again, keeping):
        lr.store.close()


def test_bringing_a_user_back_reads_the_store_without_the_learners_lock(tmp_path: Path) -> None:
    # A read may wait for the store (another commit's fsync): the learner's lock, which its
    # thread and profile reads need, must not wait with it.
    clock = Clock()
    lr, _ = make(tmp_path / "c.sqlite", clock, max_users=1)
    lr.recover()
    apply(lr, turn("away", 0))
    apply(lr, turn("here", 1))
    lr.checkpoint(full=True)
    clock.now = 10.0
    assert lr.evict() == 1 and "acme/away" not in lr.processor.books
    loaded: list[list[str]] = []
    with lr.store._lock:  # the store is busy
        loader = threading.Thread(target=lambda: loaded.append(lr.load(["acme/away"])))
        loader.start()
        time.sleep(0.1)
        assert lr.lock.acquire(timeout=2), "load held the learner's lock while reading"
        lr.lock.release()
        loader.join(timeout=5)  # its read does not wait for the writers' lock either
        assert not loader.is_alive(), "the read waited for the store's writers"
    assert loaded == [["acme/away"]]
    lr.store.close()
