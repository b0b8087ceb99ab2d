"""The embedded learner: applies the log, syncs the serving engine, recovers after a crash."""

from __future__ import annotations

from pathlib import Path

from bandit import Engine
from streaming.composer import RewardComposer
from streaming.embedded import Learner
from streaming.events import Event
from streaming.processor import Processor
from streaming.store import Store

CTX = [1.0] + [0.0] * 15


def learner(path: Path, serving: Engine | None = None) -> Learner:
    proc = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=1e6)
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
    assert lr.store.checkpoint_offset() == offset
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
