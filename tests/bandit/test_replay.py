"""``Engine.explain_logged``: a logged decision explained again by the model as it stands."""

from __future__ import annotations

import pytest

from bandit import DecisionRequest, Engine, Feedback


def test_with_unchanged_state_it_is_the_decision_time_explanation() -> None:
    engine = Engine(random_state=0)
    for _ in range(30):  # some learning, so preferences and request features carry weight
        [d] = engine.decide([DecisionRequest("acme/ana", "def f(x): return x  # why?")])
        liked = d.levels["format"] == "code-first"
        engine.learn([Feedback("acme/ana", d.arm, float(liked), d.context)])
    [d] = engine.decide([DecisionRequest("acme/ana", "def f(x): return x  # why?")])
    again = engine.explain_logged("acme/ana", d.arm, d.context.tolist(), d.action_dist.tolist())
    assert len(again) == len(d.explanation) > 1
    for r, e in zip(again, d.explanation, strict=True):  # the posterior solved by another kernel
        assert (r.kind, r.text, r.dimension, r.level, r.feature) == (
            e.kind,
            e.text,
            e.dimension,
            e.level,
            e.feature,
        )
        assert r.weight == pytest.approx(e.weight, rel=1e-9, abs=1e-12)
    # without the action distribution the logged propensity stands in for it
    alone = engine.explain_logged("acme/ana", d.arm, d.context.tolist(), (), d.propensity)
    assert [r.kind for r in alone if r.kind != "exploration"] == [
        r.kind for r in d.explanation if r.kind != "exploration"
    ]


def test_a_user_the_engine_does_not_hold_is_explained_by_the_population() -> None:
    engine = Engine(random_state=0)
    [d] = engine.decide([DecisionRequest("acme/ana", "hello")])
    reasons = engine.explain_logged("acme/nobody", d.arm, d.context.tolist())
    assert reasons and "acme/nobody" not in engine.users
