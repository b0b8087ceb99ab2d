"""One conformance suite that every registered policy goes through."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import POLICIES, ContextSpec, DecisionRequest, Engine, Feedback

MESSAGES = ["How do I sort a dict in Python?", "why is the sky blue", "Explain monads", ""]
FLOOR = 0.05


def make_engine(name: str, seed: int = 7) -> Engine:
    return Engine(policy=name, floor=FLOOR, random_state=seed)


def trained(name: str, seed: int = 7) -> Engine:
    engine = make_engine(name, seed)
    rng = np.random.default_rng(seed)
    rows = engine.users.rows([f"u{i}" for i in range(20)])
    for _ in range(5):
        ctx = ContextSpec().featurize(MESSAGES)[rng.integers(len(MESSAGES), size=len(rows))]
        sel = engine.decide_arrays(rows, ctx)
        engine.learn_arrays(rows, sel.arms, ctx, rng.random(len(rows)))
    return engine


@pytest.fixture(params=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def requests(n: int = 6, **kw: object) -> list[DecisionRequest]:
    return [
        DecisionRequest(f"u{i % 20}", MESSAGES[i % len(MESSAGES)], **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


def test_shapes_and_propensities(policy: str) -> None:
    engine = trained(policy)
    decisions = engine.decide(requests())
    assert len(decisions) == 6
    for d in decisions:
        assert d.action_dist.shape == (engine.n_arms,)
        assert 0 < d.propensity <= 1 and d.propensity == d.action_dist[d.arm]
        assert d.action_dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(d.action_dist > 0)  # no constraints: every arm allowed, so every arm > 0
        assert d.policy == policy and d.strategy_id == engine.catalog.arm_ids[d.arm]
    rows = engine.users.rows(["u1", "u2", "u3"])
    sel = engine.decide_arrays(rows, ContextSpec().featurize(MESSAGES[:3]))
    assert sel.arms.shape == (3,) and sel.action_dist.shape == (3, engine.n_arms)
    np.testing.assert_allclose(sel.action_dist.sum(axis=1), 1.0)
    np.testing.assert_array_equal(sel.propensities, sel.action_dist[np.arange(3), sel.arms])


def test_masks_and_floor(policy: str) -> None:
    engine = trained(policy)
    constraints = {"length": ["brief", "standard"], "format": "code-first"}
    allowed = engine.catalog.mask(constraints)
    for d in engine.decide(requests(8, constraints=constraints)):
        assert allowed[d.arm]
        assert d.action_dist[~allowed].sum() == 0
        assert d.action_dist[allowed].sum() == pytest.approx(1.0)
        assert d.action_dist[allowed].min() >= FLOOR / allowed.sum() - 1e-12
    # A batch of many requests takes the parallel kernel: the same contract holds.
    rows = engine.users.rows([f"u{i % 20}" for i in range(100)])
    masks = np.tile(allowed, (100, 1))
    masks[::2] = engine.catalog.mask({"depth": "basics"})
    sel = engine.decide_arrays(rows, ContextSpec().featurize(MESSAGES)[np.arange(100) % 4], masks)
    assert masks[np.arange(100), sel.arms].all()
    assert (sel.action_dist * ~masks).sum() == 0


def test_serial_kernel_decides_as_the_parallel_one(policy: str) -> None:
    """An engine that never takes the parallel kernel (a server's, ``parallel_min_batch``
    None) makes the same decisions for the same seeds."""
    engine = trained(policy)
    rows = engine.users.rows([f"u{i % 20}" for i in range(100)])
    contexts = ContextSpec().featurize(MESSAGES)[np.arange(100) % 4]
    seeds = np.arange(100, dtype=np.int64) * 7919
    wide = engine.decide_arrays(rows, contexts, seeds=seeds)
    engine.parallel_min_batch = None
    one_core = engine.decide_arrays(rows, contexts, seeds=seeds)
    np.testing.assert_array_equal(one_core.arms, wide.arms)
    np.testing.assert_allclose(one_core.action_dist, wide.action_dist, atol=1e-12)


def test_one_allowed_arm(policy: str) -> None:
    engine = trained(policy)
    only = engine.catalog.arm_index("expert.neutral.bullets.brief")
    c = dict(
        zip(engine.catalog.dimension_names, ["expert", "neutral", "bullets", "brief"], strict=True)
    )
    [d] = engine.decide([DecisionRequest("u1", "hi", constraints=c)])
    assert d.arm == only and d.propensity == pytest.approx(1.0)


def test_pins_narrow_and_constraints_win(policy: str) -> None:
    engine = trained(policy)
    engine.pin("u1", {"length": "brief"})
    assert all(
        d.levels["length"] == "brief"
        for d in engine.decide([DecisionRequest("u1", m) for m in MESSAGES])
    )
    [d] = engine.decide([DecisionRequest("u1", "x", constraints={"length": "thorough"})])
    assert d.levels["length"] == "thorough"  # the product's constraint beats the user's pin
    engine.pin("u1", {"length": None})
    assert "u1" not in engine.pins


def test_seeding_is_reproducible(policy: str) -> None:
    a, b = trained(policy, seed=3), trained(policy, seed=3)
    da, db = a.decide(requests()), b.decide(requests())
    assert [d.arm for d in da] == [d.arm for d in db]
    assert [d.seed for d in da] == [d.seed for d in db]
    # A decision's seed alone reproduces it on the same state.
    replay = a.decide(requests(), seeds=[d.seed for d in da])
    assert [d.arm for d in replay] == [d.arm for d in da]
    for x, y in zip(replay, da, strict=True):
        np.testing.assert_array_equal(x.action_dist, y.action_dist)


def test_save_load_round_trip(policy: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = trained(policy)
    engine.pin("u2", {"tone": "direct"})
    engine.save(tmp_path / "engine.npz")
    loaded = Engine.load(tmp_path / "engine.npz")
    assert loaded.policy.name == policy and loaded.pins == engine.pins
    assert loaded.policy.params == engine.policy.params
    assert loaded.shared.tenants == engine.shared.tenants
    for name, arr in engine.shared.snapshot()[""].items():
        np.testing.assert_array_equal(loaded.shared.snapshot()[""][name], arr)
    assert int(engine.shared.updates[0]) > 0 or policy == "uniform"
    for name in ("A", "B", "prior_mean", "prior_prec", "n_feedback", "n_decisions"):
        rows = engine.users.rows(engine.users.user_ids())
        lrows = loaded.users.rows(engine.users.user_ids())
        np.testing.assert_array_equal(
            getattr(loaded.users, name)[lrows], getattr(engine.users, name)[rows]
        )
    # Same state, same generator: the next decisions agree, seeds included.
    da, db = engine.decide(requests()), loaded.decide(requests())
    assert [(d.arm, d.seed) for d in da] == [(d.arm, d.seed) for d in db]


def test_batch_learning_equals_one_by_one(policy: str) -> None:
    a, b = make_engine(policy), make_engine(policy)
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in rng.integers(0, 5, 40)]
    arms = rng.integers(0, a.n_arms, 40)
    ctx = ContextSpec().featurize(MESSAGES)[rng.integers(0, 4, 40)]
    rewards = rng.random(40)
    a.learn(
        [
            Feedback(u, int(k), float(r), c)
            for u, k, r, c in zip(users, arms, rewards, ctx, strict=True)
        ]
    )
    for u, k, r, c in zip(users, arms, rewards, ctx, strict=True):
        b.learn([Feedback(u, int(k), float(r), c)])
    np.testing.assert_array_equal(a.shared.mean, b.shared.mean)
    np.testing.assert_array_equal(a.shared.cov, b.shared.cov)
    for u in set(users):
        ra, rb = a.users.get(u), b.users.get(u)
        for key in ra:
            np.testing.assert_array_equal(ra[key], rb[key])


def test_inputs_are_not_mutated(policy: str) -> None:
    engine = trained(policy)
    rows = engine.users.rows(["u1", "u2", "u3", "u4"])
    ctx = ContextSpec().featurize(MESSAGES)
    masks = np.ones((4, engine.n_arms), bool)
    masks[1, :10] = False
    seeds = np.array([1, 2, 3, 4])
    rewards = np.array([0.1, 0.9, 0.5, 0.0])
    copies = [x.copy() for x in (rows, ctx, masks, seeds, rewards)]
    sel = engine.decide_arrays(rows, ctx, masks, seeds)
    engine.learn_arrays(rows, sel.arms, ctx, rewards)
    for before, after in zip(copies, (rows, ctx, masks, seeds, rewards), strict=True):
        np.testing.assert_array_equal(before, after)


def test_explanations_name_levels_or_exploration(policy: str) -> None:
    engine = trained(policy)
    for d in engine.decide(requests()):
        assert 1 <= len(d.explanation) <= 4
        for reason in d.explanation:
            assert reason.kind in {"preference", "request", "exploration"} and reason.text
            if reason.kind != "exploration":
                assert d.levels[reason.dimension] == reason.level
