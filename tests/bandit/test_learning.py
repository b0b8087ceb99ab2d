"""The engine learns a user's taste: a fixed-seed simulated user."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import DecisionRequest, Engine, Feedback

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


def test_shared_step_decays_from_its_start_to_its_floor() -> None:
    engine = Engine(random_state=0, shared_lr=0.1, shared_lr_min=0.01, shared_lr_tau=100)
    np.testing.assert_allclose(engine.shared_steps(3), [0.1, 0.1 / 1.01, 0.1 / 1.02])
    [d] = engine.decide([DecisionRequest("ana", "hi")])
    engine.learn([Feedback("ana", d.arm, 1.0, d.context)] * 100)
    assert engine.shared_updates == 100
    assert engine.shared_steps(1)[0] == pytest.approx(0.05)  # halved after tau updates
    engine.shared_updates = 10**6
    assert engine.shared_steps(1)[0] == 0.01
    # a start below the floor stays constant
    low = Engine(random_state=0, shared_lr=0.001, shared_lr_min=0.01)
    np.testing.assert_allclose(low.shared_steps(2), 0.001)
