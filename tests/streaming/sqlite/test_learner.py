"""The embedded learner: applies the log, syncs the serving engine, recovers after a crash."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bandit import ContextSpec, Engine
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor
from streaming.sqlite.learner import Learner
from streaming.sqlite.store import Store

CTX = [1.0] + [0.0] * (ContextSpec().n_columns - 1)


def learner(path: Path, serving: Engine | None = None, **params: int) -> Learner:
    proc = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=1e6, **params)
    return Learner(Store(path), proc, serving=serving, checkpoint_interval_s=0.05)


def events(n: int, start: int = 0) -> list[Event]:
    out = []
    for i in range(start, start + n):
        out.append(
            Event("decision", f"d{i}", "acme", "ana", float(i), {"arm": i % 7, "context": CTX})
        )
        out.append(
            Event(
                "feedback",
                f"f{i}",
                "acme",
                "ana",
                float(i),
                {"decision_id": f"d{i}", "kind": "reward", "value": 1.0},
            )
        )
    return out


def test_thread_applies_the_log_and_syncs_the_serving_engine(tmp_path: Path) -> None:
    serving = Engine(random_state=1)
    lr = learner(tmp_path / "a.sqlite", serving)
    lr.recover()
    lr.start()
    [offset] = lr.store.append(events(5))[-1:]
    assert offset is not None and lr.wait_for(offset, checkpointed=True)
    assert lr.processor.counters("acme/ana")["feedback_events"] == 5
    assert int(serving.users.n_feedback[serving.users.ids["acme/ana"]]) == 5
    lr.stop()
    assert lr.checkpoints.offset() == offset
    lr.store.close()


def test_the_serving_shared_model_follows_feedback_and_is_not_recopied_for_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = Engine(random_state=1)
    lr = learner(tmp_path / "s.sqlite", serving)
    lr.recover()
    copies = []
    copy_from = type(serving.shared).copy_from

    def counted(self: object, other: object) -> None:
        copies.append(1)
        copy_from(self, other)  # type: ignore[arg-type]

    monkeypatch.setattr(type(serving.shared), "copy_from", counted)
    lr.store.append(events(3))
    lr.step()
    source = lr.processor.engine.shared
    t = source.index("acme")
    assert source.updates[t] == 3
    np.testing.assert_array_equal(serving.shared.mean[serving.shared.index("acme")], source.mean[t])
    assert copies, "feedback moved the shared model: the serving engine gets it"
    copies.clear()
    lr.store.append(decisions("ana", 20, start=100))
    lr.step()
    assert not copies, "decisions teach the shared model nothing: no copy"
    lr.sync(set(), shared=True)
    assert copies == [1]
    lr.store.close()


def test_a_step_of_decisions_does_not_wait_for_the_serving_engine(tmp_path: Path) -> None:
    # Every decision holds the serving engine's lock while it decides; a slice of the log that
    # holds only decisions has nothing to copy into it, so it must not queue for that lock.
    serving = Engine(random_state=1)
    lr = learner(tmp_path / "w.sqlite", serving)
    lr.recover()
    lr.store.append(decisions("ana", 1))
    lr.step()  # the tenant's first event adds it to the shared model: that is copied
    lr.store.append(decisions("ana", 5, start=1))
    done = threading.Event()
    with serving.lock:
        stepping = threading.Thread(target=lambda: (lr.step(), done.set()), daemon=True)
        stepping.start()
        assert done.wait(10), "the step waited for the serving engine's lock"
        assert lr.processor.counters("acme/ana")["decisions"] == 6
        lr.store.append(events(1, start=50))  # feedback changes ana: that step must copy
        stepping = threading.Thread(target=lr.step, daemon=True)
        stepping.start()
        stepping.join(0.5)
        assert stepping.is_alive(), "feedback was copied without the serving engine's lock"
    stepping.join(10)
    assert int(serving.users.n_feedback[serving.users.ids["acme/ana"]]) == 1
    lr.store.close()


def test_recovery_replays_after_the_checkpoint_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    first = learner(path)
    first.recover()
    first.store.append(events(3))
    first.step()
    first.checkpoint()
    first.store.append(events(4, start=3))
    first.step()  # applied but never checkpointed: a crash now loses only memory
    first.store.close()
    second = learner(path)
    replayed = second.recover()
    assert replayed == 8
    c = second.processor.counters("acme/ana")
    assert (c["decisions"], c["feedback_events"]) == (7, 7)
    second.store.close()


def decisions(user: str, n: int, start: int = 0) -> list[Event]:
    return [
        Event("decision", f"{user}-d{i}", "acme", user, float(i), {"arm": 1, "context": CTX})
        for i in range(start, start + n)
    ]


# With 2 events a step, a step of the recovery holds only events ana's saved state has: it
# must not end the recovery.
@pytest.mark.parametrize("batch", [2000, 2])
def test_decision_only_users_are_saved_in_shares_and_replayed_after_a_crash(
    tmp_path: Path, batch: int
) -> None:
    path = tmp_path / "c.sqlite"
    # Remembering only 2 event ids, the processor cannot tell ana's replayed events from new
    # ones: only the offset saved with her state keeps them from being applied twice.
    first = learner(path, max_seen=2)
    first.catch_up_s = 4 * first.checkpoint_interval_s  # a quarter of the waiting users a tick
    first.recover()
    for user in ("u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"):
        first.store.append(decisions(user, 2))
    first.store.append(events(3))  # ana: feedback, saved at every checkpoint
    first.step()
    first.checkpoint()
    states = first.checkpoints.state_offsets()
    assert "acme/ana" in states and len(states) == 1 + 2  # ana and the 2 longest-waiting
    assert first.checkpoints.offset() < first.offset  # the rest is replayed on recovery
    first.store.append(events(2, start=3))
    first.step()  # applied, never checkpointed: the crash below loses it from memory only
    first.store.close()

    second = learner(path, max_seen=2)
    second.batch = batch
    second.recover()
    c = second.processor.counters("acme/ana")
    assert (c["decisions"], c["feedback_events"]) == (5, 5)  # none twice, none lost
    # u0 was saved before the replay offset: recovery leaves it on disk until it is asked for.
    assert "acme/u0" not in second.processor.books
    assert second.load(["acme/u0", "acme/u3", "acme/u7"]) == ["acme/u0"]
    for user in ("u0", "u3", "u7"):
        assert second.processor.counters(f"acme/{user}")["decisions"] == 2
    # Recovery ends with a full checkpoint: nothing is left to replay.
    assert second.checkpoints.offset() == second.offset
    assert len(second.checkpoints.state_offsets()) == 9
    second.store.close()


def test_every_waiting_user_is_saved_within_the_catch_up_time(tmp_path: Path) -> None:
    lr = learner(tmp_path / "d.sqlite")
    lr.catch_up_s = 3 * lr.checkpoint_interval_s
    lr.recover()
    for user in ("u0", "u1", "u2", "u3", "u4", "u5"):
        lr.store.append(decisions(user, 1))
    lr.step()
    saved = []
    for _ in range(4):
        lr.checkpoint()
        saved.append(len(lr.checkpoints.state_offsets()))
    assert saved == [2, 4, 5, 6]  # a third of those still waiting, rounded up, each tick
    assert lr.checkpoints.offset() == lr.offset
    lr.store.close()
