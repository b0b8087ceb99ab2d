"""User state: growth, erasure, persistence, size."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from bandit import ContextSpec, Engine, Feedback, SchemaError, UserState
from bandit.atomic import atomic_write
from bandit.state import save_npz


def test_rows_grow_and_are_stable() -> None:
    state = UserState(n_features=8, capacity=2)
    first = state.rows([f"u{i}" for i in range(5)])
    assert first.tolist() == [0, 1, 2, 3, 4] and state.A.shape[0] >= 5
    assert state.rows(["u3", "u0"]).tolist() == [3, 0]
    with pytest.raises(KeyError, match="unknown user 'nobody'"):
        state.rows(["nobody"], create=False)


def test_remove_erases_and_reuses_the_row() -> None:
    engine = Engine(random_state=0)
    [d] = engine.decide([__import__("bandit").DecisionRequest("gone", "hello")])
    engine.learn([Feedback("gone", d.arm, 1.0, d.context)])
    engine.pin("gone", {"tone": "warm"})
    row = engine.users.ids["gone"]
    assert engine.forget("gone") and "gone" not in engine.users and "gone" not in engine.pins
    assert engine.users.n_feedback[row] == 0 and np.all(engine.users.B[row] == 0)
    with pytest.raises(KeyError):
        engine.profile("gone")
    assert engine.users.rows(["newcomer"])[0] == row  # the freed row is reused
    assert not engine.forget("never-seen")


def test_forget_many_erases_every_user_given_and_no_other() -> None:
    engine = Engine(random_state=0)
    users = ["a", "b", "c", "keep"]
    decisions = engine.decide([__import__("bandit").DecisionRequest(u, "hello") for u in users])
    engine.learn(
        [Feedback(u, d.arm, 1.0, d.context) for u, d in zip(users, decisions, strict=True)]
    )
    engine.pin("b", {"tone": "warm"})
    rows = [engine.users.ids[u] for u in users]
    kept = engine.users.B[rows[3]].copy()
    engine.forget_many(["a", "b", "never-seen", "c"])
    assert [u in engine.users for u in users] == [False, False, False, True]
    assert "b" not in engine.pins
    assert np.all(engine.users.B[rows[:3]] == 0) and np.all(engine.users.n_feedback[rows[:3]] == 0)
    np.testing.assert_array_equal(engine.users.B[rows[3]], kept)
    assert engine.users.n_feedback[rows[3]] == 1
    reused = engine.users.rows(["x", "y", "z"]).tolist()
    assert sorted(reused) == sorted(rows[:3])  # the freed rows are reused


def test_save_load_and_schema_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = UserState(n_features=4)
    rows = state.rows(["a", "b"])
    state.B[rows] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    state.save(tmp_path / "s.npz")
    loaded = UserState.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.B[loaded.rows(["b"])], [[5, 6, 7, 8]])
    arrays = state.to_arrays()
    arrays["meta"] = np.array([99, 4, 1.0])
    save_npz(tmp_path / "future.npz", arrays)
    with pytest.raises(SchemaError, match="schema version 99 is not supported"):
        UserState.load(tmp_path / "future.npz")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, lambda fh: fh.write(b"old"))

    def fail(fh: BinaryIO) -> None:
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))


def test_record_round_trip_between_engines() -> None:
    a, b = Engine(random_state=0), Engine(random_state=1)
    rows = a.users.rows(["x"])
    a.learn_arrays(rows, np.array([3]), ContextSpec().featurize(["hi"]), np.array([1.0]))
    b.users.put("x", a.users.get("x"))
    b.shared.copy_from(a.shared)  # the profile reads the population part too
    assert a.profile("x")["preferences"] == b.profile("x")["preferences"]


def test_bytes_per_user_under_4k_at_32_features() -> None:
    state = UserState(n_features=32)
    state.rows([f"user-{i:06d}" for i in range(10_000)])
    assert state.bytes_per_user() <= 4096


def test_public_lock_is_reentrant_and_excludes_other_threads() -> None:
    import threading

    from bandit import DecisionRequest

    engine = Engine(random_state=0)
    with engine.lock:
        engine.decide([DecisionRequest("u", "hi")])  # re-entrant: the holder may call in
    done = threading.Event()

    def other() -> None:
        engine.decide([DecisionRequest("v", "hi")])
        done.set()

    with engine.lock:
        worker = threading.Thread(target=other)
        worker.start()
        assert not done.wait(0.3)  # blocked while the lock is held
    worker.join(10)
    assert done.is_set()
