"""The engine learns a user's taste: a fixed-seed simulated user."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import ContextSpec, DecisionRequest, DeclaredFeature, Engine, Feedback

MESSAGES = [
    "How does gradient descent work?",
    "Explain attention in transformers",
    "why is my training loop slow",
]


@pytest.mark.parametrize("policy", ["lints", "linucb"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_user_who_likes_expert_code_first_gets_it(policy: str, seed: int) -> None:
    engine = Engine(policy=policy, random_state=seed)
    rng = np.random.default_rng(100 + seed)

    def reward(levels: dict[str, str]) -> float:
        p = 0.15 + 0.35 * (levels["depth"] == "expert") + 0.35 * (levels["format"] == "code-first")
        return float(rng.random() < p)

    for t in range(150):
        [d] = engine.decide([DecisionRequest("researcher", MESSAGES[t % 3])])
        engine.learn([Feedback("researcher", d.arm, reward(dict(d.levels)), d.context)])
    chosen = [
        engine.decide([DecisionRequest("researcher", MESSAGES[t % 3])])[0].levels
        for t in range(200)
    ]
    both = np.mean([lv["depth"] == "expert" and lv["format"] == "code-first" for lv in chosen])
    assert both > 0.70, f"{policy} seed {seed}: expert+code-first in {both:.0%} of decisions"
    profile = engine.profile("researcher")["preferences"]
    assert profile["depth"]["preferred"] == "expert"
    assert profile["format"]["preferred"] == "code-first"


def test_request_features_transfer_to_a_new_user() -> None:
    """Code questions rewarded with code-first answers by many users: a brand-new user's first
    code question leans code-first (the shared interaction model)."""
    engine = Engine(policy="lints", random_state=0)
    rng = np.random.default_rng(0)
    code_q, prose_q = "def f(x):\n    return x  # why is this slow?", "Tell me about the Alps"
    for i in range(3000):
        msg = code_q if i % 2 else prose_q
        [d] = engine.decide([DecisionRequest(f"crowd-{i % 300}", msg)])
        good = (d.levels["format"] == "code-first") == (msg == code_q)
        engine.learn(
            [Feedback(d.user_id, d.arm, float(rng.random() < (0.8 if good else 0.2)), d.context)]
        )
    firsts = [engine.decide([DecisionRequest(f"new-{i}", code_q)])[0] for i in range(200)]
    share = np.mean([d.levels["format"] == "code-first" for d in firsts])
    assert share > 0.5, f"code-first on a new user's first code question: {share:.0%}"


ROLES = ContextSpec(
    (DeclaredFeature("role", "categorical", "user", levels=("engineer", "manager")),)
)


def test_a_declared_user_feature_reaches_a_new_users_first_turn() -> None:
    """Engineers rewarded code-first answers and managers bullets, over many users: a brand-new
    user who says they are an engineer gets code-first on their first turn, a new manager
    bullets (the issue's bar: > 70%)."""
    engine = Engine(policy="lints", context=ROLES, random_state=0)
    rng = np.random.default_rng(0)
    liked = {"engineer": "code-first", "manager": "bullets"}
    for i in range(3000):
        role = "engineer" if i % 2 else "manager"
        [d] = engine.decide([DecisionRequest(f"crowd-{i % 400}", "help", features={"role": role})])
        p = 0.8 if d.levels["format"] == liked[role] else 0.2
        engine.learn([Feedback(d.user_id, d.arm, float(rng.random() < p), d.context)])
    for role, fmt in liked.items():
        firsts = [
            engine.decide([DecisionRequest(f"new-{role}-{i}", "help", features={"role": role})])[0]
            for i in range(200)
        ]
        share = np.mean([d.levels["format"] == fmt for d in firsts])
        assert share > 0.7, f"{fmt} on a new {role}'s first turn: {share:.0%}"


def _population(deviation: float, seed: int = 0) -> Engine:
    """200 users rate strategies by one shared taste plus their own, of sd ``deviation``."""
    engine = Engine(policy="lints", random_state=seed)
    rng = np.random.default_rng(seed)
    width = engine.catalog.attributes.shape[1]
    common = rng.normal(0, 0.15, width)
    own = rng.normal(0, deviation, (200, width))
    rows = engine.users.rows([f"u{i}" for i in range(200)])
    ctx = ContextSpec().featurize(["hello"] * 200)
    for _ in range(15):
        sel = engine.decide_arrays(rows, ctx)
        p = 0.5 + np.einsum("ua,ua->u", engine.catalog.attributes[sel.arms], common + own)
        rewards = (rng.random(200) < np.clip(p, 0.02, 0.98)).astype(float)
        engine.learn_arrays(rows, sel.arms, ctx, rewards)
    return engine


def test_the_empirical_prior_follows_how_far_users_deviate() -> None:
    alike, apart = _population(0.0), _population(0.12)
    sd_alike, sd_apart = alike.shared.deviation_sd(""), apart.shared.deviation_sd("")
    assert sd_alike is not None and sd_apart is not None
    assert sd_alike < 0.05 < sd_apart, (sd_alike, sd_apart)
    # a new user of the tenant whose users are alike starts with a narrow prior
    assert alike.shared.user_prior("new")[1] > 4 * apart.shared.user_prior("new")[1]


def test_one_tenants_feedback_never_moves_another_tenants_decisions() -> None:
    fresh, trained = Engine(random_state=0), Engine(random_state=0)
    rng = np.random.default_rng(0)
    for i in range(500):
        [d] = trained.decide([DecisionRequest(f"acme/u{i % 50}", "How do I sort a list?")])
        trained.learn([Feedback(d.user_id, d.arm, float(rng.random() < 0.5), d.context)])
    request = [DecisionRequest("beta/new", "How do I sort a list?")]
    a, b = fresh.decide(request, seeds=[11]), trained.decide(request, seeds=[11])
    np.testing.assert_array_equal(a[0].action_dist, b[0].action_dist)
    assert trained.shared.updates[trained.shared.tenants["acme"]] == 500
    assert trained.shared.updates[trained.shared.tenants["beta"]] == 0


def test_the_shared_posterior_narrows_where_the_data_is() -> None:
    engine = Engine(random_state=0)
    code, prose = "def f(x):\n    return x", "Tell me about the Alps"
    for i in range(300):
        [d] = engine.decide([DecisionRequest(f"u{i % 30}", code)])
        engine.learn([Feedback(d.user_id, d.arm, 1.0, d.context)])
    g, v_code, v_prose = np.empty(15), np.empty(15), np.empty(15)
    mean, cov = engine.shared.mean[0], engine.shared.cov[0]
    from bandit import _kernels as K

    K.shared_terms(mean, cov, engine.context.featurize([code])[0], g, v_code)
    K.shared_terms(mean, cov, engine.context.featurize([prose])[0], g, v_prose)
    prior = (
        engine.config.shared_prior_sd**2
        * engine.context.featurize([code])[0]
        @ (engine.context.featurize([code])[0])
    )
    assert v_code[0] < 0.1 * prior  # the bias column, seen 300 times on this context
    assert v_code.sum() < v_prose.sum()
