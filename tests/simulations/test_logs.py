"""Decision logs: Parquet round trip, the embedded store's export, prequential replay."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import ContextSpec, Engine
from simulations.logs import LogError, load_log, load_log_frame, log_frame, store_frame, write_log
from simulations.target import replay_target
from streaming.events import Event
from streaming.sqlite.store import Store


def _store_with_decisions(path, n=6):
    engine = Engine(random_state=0)
    store = Store(path)
    events = []
    messages = ["How do I sort a list?", "why is the sky blue"]
    for i in range(n):
        rows = engine.users.rows([f"acme/u{i % 2}"])
        ctx = ContextSpec().featurize([messages[i % 2]])
        sel = engine.decide_arrays(rows, ctx)
        events.append(
            Event(
                "decision",
                f"d{i}",
                "acme",
                f"u{i % 2}",
                100.0 + i,
                {
                    "decision_id": f"d{i}",
                    "arm": int(sel.arms[0]),
                    "strategy_id": "x",
                    "propensity": float(sel.propensities[0]),
                    "action_dist": sel.action_dist[0].tolist(),
                    "context": ctx[0].tolist(),
                    "policy": "lints",
                    "locale": "en",
                    "seed": 1,
                    "audit": {"locale": ["en", "ko"][i % 2]},
                },
            )
        )
        if i % 3 == 0:
            events.append(
                Event(
                    "feedback",
                    f"f{i}",
                    "acme",
                    f"u{i % 2}",
                    100.5 + i,
                    {"decision_id": f"d{i}", "kind": "thumbs", "value": "up"},
                )
            )
    store.append(events)
    store.close()


def test_store_export_round_trips_through_parquet(tmp_path):
    _store_with_decisions(tmp_path / "attune.sqlite")
    df = store_frame(tmp_path)  # the data folder works as well as the file
    assert df.height == 6
    assert set(df["user_id"]) == {"acme/u0", "acme/u1"}
    assert df["has_feedback"].to_list() == [True, False, False, True, False, False]
    assert df["reward"][0] == pytest.approx(1.0)
    assert set(df["audit_locale"]) == {"en", "ko"}
    write_log(df, tmp_path / "log.parquet")
    log = load_log(tmp_path / "log.parquet")
    width = ContextSpec().n_columns
    assert log.n_rounds == 6 and log.n_arms == 128 and log.context.shape == (6, width)
    assert np.allclose(log.action_dist[np.arange(6), log.action], log.pscore)


def test_missing_store_and_empty_store_are_errors(tmp_path):
    with pytest.raises(LogError, match="no such store"):
        store_frame(tmp_path / "nothing")
    Store(tmp_path / "attune.sqlite").close()
    with pytest.raises(LogError, match="holds no decisions"):
        store_frame(tmp_path)
    with pytest.raises(LogError, match="no such file"):
        load_log_frame(tmp_path / "missing.parquet")


def test_logs_are_sorted_by_time_on_load(tmp_path):
    df = log_frame(
        user_id=["a", "b", "a"],
        ts=np.array([3.0, 1.0, 2.0]),
        context=np.ones((3, 16)),
        action=np.array([0, 1, 2]),
        reward=np.array([1.0, 0.0, 0.5]),
        pscore=np.full(3, 0.5),
        action_dist=None,
    )
    write_log(df, tmp_path / "l.parquet")
    log = load_log(tmp_path / "l.parquet")
    assert log.action.tolist() == [1, 2, 0]
    assert log.user_id.tolist() == ["b", "a", "a"]


def test_replay_gives_the_target_distribution_before_it_sees_the_reward():
    rng = np.random.default_rng(0)
    n = 600
    ctx = ContextSpec().featurize(["How do I sort a list?"])[np.zeros(n, dtype=int)]
    good = 5
    action = rng.integers(128, size=n)
    reward = (action == good).astype(float)
    from simulations.logs import from_dict

    log = from_dict(
        {
            "context": ctx,
            "action": action,
            "reward": reward,
            "pscore": np.full(n, 1 / 128),
            "action_dist": np.full((n, 128), 1 / 128),
            "user_id": np.array(["solo"] * n),
            "ts": np.arange(n, dtype=float),
        }
    )
    dist, q = replay_target(log, "linucb", params={"alpha": 0.1}, chunk=50)
    assert dist.shape == q.shape == (n, 128)
    assert np.allclose(dist.sum(axis=1), 1.0)
    # first chunk: nothing learned yet, so no preference for the rewarded arm
    assert dist[0, good] < 0.05
    # by the end the replayed policy has found it
    assert dist[-1, good] > 0.5
    assert q[-1].argmax() == good


def test_replay_refuses_foreign_logs():
    from simulations.logs import from_dict

    log = from_dict(
        {
            "context": np.ones((4, 5)),
            "action": np.zeros(4, dtype=int),
            "reward": np.ones(4),
            "pscore": np.ones(4),
        }
    )
    with pytest.raises(ValueError, match="needs 24 context columns"):
        replay_target(log, "lints")
