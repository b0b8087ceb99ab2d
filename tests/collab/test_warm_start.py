"""Warm start on a simulated community: new users, returning users, new arms."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import numpy as np
import polars as pl
import pytest

import collab
from bandit import Catalog, ContextSpec, DecisionRequest, Engine, Feedback
from bandit.state import unpack
from collab.clusters import cluster_stats
from tests.collab.community import (
    Community,
    learn_history,
    oracle_ts,
    run_new_users,
    turns_to_reach,
)
from tests.collab.conftest import N_HISTORY_USERS, fit_model

N_NEW = 60
HORIZON = 60


@pytest.fixture(scope="module")
def time_to_90(world) -> dict[str, np.ndarray]:
    """Feedbacks until a new user's expected reward stays >= 90% of their oracle, with the same
    policy (LinTS) started warm (CF) and cold (no CF; its shared model did learn the history).
    Censored at HORIZON."""
    out = {}
    for name in ("warm", "cold"):
        # the world's personas (same seed), new individuals, the same draws in both arms
        community = Community(seed=1)
        community.users(N_HISTORY_USERS, "h")
        new = community.users(N_NEW, "n")
        oracle = np.array([u.oracle for u in new])
        engine = Engine(random_state=0)
        learn_history(engine, world.history)
        refine = None
        if name == "warm":
            collab.warm_start(engine, world.model)
            refine = partial(_refine, engine, engine.cold_start)
        expected = run_new_users(engine, community, new, HORIZON, seed=7, after_learn=refine)
        out[name] = turns_to_reach(expected, oracle)
        out[name + "_first"] = expected[:, 0] / oracle
        out[name + "_at5"] = expected[:, 5] / oracle  # the share after 5 feedbacks
    print(
        json.dumps(
            {k: float(v.mean()) for k, v in out.items()}
            | {k + "_median": float(np.median(out[k])) for k in ("warm", "cold")}
            | {k + "_censored": float((out[k] == HORIZON).mean()) for k in ("warm", "cold")}
        )
    )
    return out


def _refine(engine: Engine, prior: collab.ClusterPrior, feedback: Feedback) -> None:
    collab.refine_cluster_priors(engine, prior, [feedback.user_id], feedback.context[None])


def test_warm_start_personalizes_new_users_faster_than_cold(time_to_90) -> None:
    """Half of issue 5's bar: at least 3x faster than the same policy started cold."""
    warm, cold = time_to_90["warm"].mean(), time_to_90["cold"].mean()
    # most cold users never reach 90% within HORIZON and count as HORIZON, so the true ratio
    # is higher than the one asserted
    assert warm * 3 <= cold, (warm, cold)
    # The cold engine serves a new user's first turn from the population model too, which
    # learns across users (issue 13): warm start still starts them better, and well.
    warm_first, cold_first = time_to_90["warm_first"].mean(), time_to_90["cold_first"].mean()
    assert warm_first >= 0.9 and warm_first > cold_first, (warm_first, cold_first)
    assert time_to_90["warm_at5"].mean() >= 0.92, time_to_90["warm_at5"].mean()


def test_issue_bar_within_five_feedbacks(time_to_90) -> None:
    """Issue 5's bar: 90% of the oracle within 5 feedbacks on average (staying there 3 turns),
    on the fixed-seed community above."""
    assert time_to_90["warm"].mean() <= 5.0, time_to_90["warm"].mean()


SEEDS = [(1, 0, 7), (2, 3, 11), (3, 1, 5), (4, 2, 3), (5, 4, 9)]  # community, fit, run


def test_five_communities_against_an_oracle_policy() -> None:
    """The bar over five seeded communities, next to a policy that knows each persona's true
    rewards (``oracle_ts``), on the same individuals and horizon.

    The bar is relative to that oracle because the oracle itself needs more than 5 feedbacks
    on some communities: some individuals' best strategy is not their persona's, and thumbs
    take tens of turns to show it. Most of the rest of the gap is the history's size: 100
    thumbs from each of 100 members per group measure a group's reward per strategy only to
    about the size of the per-strategy quirks (``cluster_stats``).
    """
    warm, oracle = [], []
    for community_seed, fit_seed, run_seed in SEEDS:
        # as in ``world`` and ``time_to_90``: the history from one draw of the community, new
        # users and their requests from a second draw of the same personas
        past = Community(seed=community_seed)
        history = past.history(past.users(N_HISTORY_USERS, "h"), 100)
        model = fit_model(history, random_state=fit_seed)
        community = Community(seed=community_seed)
        community.users(N_HISTORY_USERS, "h")
        new = community.users(N_NEW, "n")
        best = np.array([u.oracle for u in new])
        engine = Engine(random_state=0)
        learn_history(engine, history)
        collab.warm_start(engine, model)
        refine = partial(_refine, engine, engine.cold_start)
        expected = run_new_users(engine, community, new, HORIZON, run_seed, after_learn=refine)
        warm.append(float(turns_to_reach(expected, best).mean()))
        reference = oracle_ts(community, new, HORIZON, run_seed)
        oracle.append(float(turns_to_reach(reference, best).mean()))
    print(json.dumps({"warm": warm, "oracle": oracle}))
    assert np.mean(warm) <= 3 * np.mean(oracle), (warm, oracle)


def test_known_users_start_from_their_persona(world, trained_engine) -> None:
    collab.warm_start(trained_engine, world.model)
    hits = []
    for user in world.known[:60]:
        rows = trained_engine.users.rows([user.uid])
        ctx = ContextSpec().featurize(["ok"])
        predicted = trained_engine.expected_rewards(rows, ctx)[0]
        hits.append(user.mu[np.argmax(predicted)] / user.oracle)
    # their group's rewards plus the share of their own ALS-predicted deviation that held up
    # (``individual_weight``): the bar is above what the ALS predictions alone reach from 100
    # uniform-logged thumbs per user, and far above a random arm
    assert np.mean(hits) >= 0.88, np.mean(hits)


def test_returning_users_keep_personalization_across_a_retrain(world) -> None:
    """Users served after training, then a retrain on everything: with reset + replay of the
    feedback after the new cutoff, their posterior is what the new model says plus only the
    newer feedback, and their best arm stays good."""
    community = Community(seed=5)  # only its draws of arms, rewards and messages are used
    engine = Engine(random_state=0)
    learn_history(engine, world.history)
    collab.warm_start(engine, world.model)
    returning = world.known[:30]
    later = community.history(returning, 20, t0=1e6)  # after the first model's cutoff
    learn_history(engine, later)
    before = _best_arm_share(engine, returning)
    both = pl.concat([world.history, later])
    retrained = collab.fit(
        both.filter(pl.col("ts") < 1e6 + 300),
        factors=8,
        regularization=20.0,
        n_clusters=6,
        random_state=1,
    )
    report = collab.warm_start(engine, retrained, replay=both)
    assert report["replayed"] == len(both.filter(pl.col("ts") > retrained.cutoff_ts))
    after = _best_arm_share(engine, returning)
    assert after >= 0.9 * before and after >= 0.8, (before, after)
    # no double counting: warming twice with the same replay gives the same posteriors
    state = engine.users.get(returning[0].uid)
    collab.warm_start(engine, retrained, replay=both)
    again = engine.users.get(returning[0].uid)
    np.testing.assert_allclose(again["A"], state["A"], rtol=1e-5)
    np.testing.assert_allclose(again["B"], state["B"], rtol=1e-5, atol=1e-6)


def _best_arm_share(engine: Engine, users) -> float:
    rows = engine.users.rows([u.uid for u in users])
    ctx = np.repeat(ContextSpec().featurize(["ok"]), len(users), axis=0)
    best = engine.expected_rewards(rows, ctx).argmax(axis=1)
    return float(np.mean([u.mu[a] / u.oracle for u, a in zip(users, best, strict=True)]))


def test_new_arm_gets_the_embedding_its_attributes_imply(world) -> None:
    catalog = Catalog.default()
    missing = catalog.arm_ids.index("expert.direct.code-first.brief")
    keep = [i for i in range(catalog.n_arms) if i != missing]
    model = dataclasses.replace(
        world.model,
        arm_ids=tuple(catalog.arm_ids[i] for i in keep),
        arm_factors=world.model.arm_factors[keep],
        cluster_rewards=world.model.cluster_rewards[:, keep],
    )
    space = collab.arm_space(catalog, model, room=17)
    assert space.imputed.sum() == 1 and space.imputed[missing]
    full = collab.arm_space(catalog, world.model, room=17).factors
    others = np.delete(full, missing, axis=0)
    # the imputed factor is nearer the trained one than the typical other arm is
    dist = np.linalg.norm(space.factors[missing] - full[missing])
    assert dist < np.median(np.linalg.norm(others - full[missing], axis=1))
    report = collab.warm_start(Engine(random_state=0), model, users=[])
    assert report["imputed_arms"] == 1


def test_embeddings_and_cold_start_are_installed(world) -> None:
    engine = Engine(random_state=0)
    collab.warm_start(engine, world.model, users=[])
    width = engine.catalog.attributes.shape[1]
    norms = np.linalg.norm(engine.X[:, width:], axis=1)
    assert norms.mean() == pytest.approx(np.sqrt(len(engine.catalog.dimensions)), rel=1e-6)
    [d] = engine.decide([DecisionRequest("t/new", "Fix this: def f(x): return x +")])
    assert engine.users.prior_prec[engine.users.ids["t/new"]] > engine.users.prior_precision
    assert 0 < d.propensity <= 1


def test_group_priors_reproduce_the_measured_group_rewards(world) -> None:
    """The group block makes each cluster's prior score every arm at its measured reward, and
    both embedding blocks are orthogonal to the attributes (so the attribute part of a prior,
    the part the profile reads, is the attributes-only fit)."""
    engine = Engine(random_state=0)
    learn_history(engine, world.history)
    collab.warm_start(engine, world.model, users=[])
    pmap = collab.PriorMap(engine, world.model, collab.Priors())
    assert isinstance(engine.cold_start, collab.ClusterPrior)
    means = engine.cold_start.cluster_means
    scores = engine.X[:, : means.shape[1]] @ means.T + pmap.baseline[:, None]
    np.testing.assert_allclose(scores.T, pmap.cluster_rewards, atol=1e-9)
    attrs = engine.catalog.attributes
    np.testing.assert_allclose(attrs.T @ pmap.embeddings, 0.0, atol=1e-9)
    fitted = np.linalg.lstsq(attrs, pmap.cluster_rewards.T - pmap.baseline[:, None], rcond=None)
    np.testing.assert_allclose(attrs @ means[:, : attrs.shape[1]].T, attrs @ fitted[0], atol=1e-9)


def test_bpr_model_warm_starts(world) -> None:
    model = collab.fit(world.history, model="bpr", factors=8, n_clusters=4, random_state=0)
    assert model.kind == "bpr" and model.arm_factors.shape[0] == 128
    report = collab.warm_start(Engine(random_state=0), model, users="present")
    assert report["known_users"] == 0


def test_refine_swaps_a_wrong_cluster_prior_and_keeps_the_evidence(world) -> None:
    engine = Engine(random_state=0)
    collab.warm_start(engine, world.model, users=[])
    prior = engine.cold_start
    engineers = [u for u in world.known if u.persona == "engineer"]
    target = np.bincount([world.model.cluster_of(u.uid) for u in engineers]).argmax()
    best = int(np.argmax(world.community.base["engineer"]))
    worst = int(np.argmin(world.community.base["engineer"]))
    [d] = engine.decide([DecisionRequest("t/newbie", "ok")])  # says nothing about the user
    feedback = [Feedback("t/newbie", a, r, d.context) for a, r in [(best, 1.0), (worst, 0.0)] * 3]
    engine.learn(feedback)
    row = engine.users.ids["t/newbie"]
    d_ = engine.n_features

    def evidence() -> np.ndarray:
        lam = float(engine.users.prior_prec[row])
        return unpack(engine.users.A[row].astype(np.float64), d_) - lam * np.eye(d_)

    before = evidence()
    [chosen] = collab.refine_cluster_priors(engine, prior, ["t/newbie"])
    assert chosen == target
    np.testing.assert_allclose(evidence(), before, atol=1e-3)
    # A known user's own CF prior stands for their cluster: rewards their persona gives keep
    # them on it, the engineers' rewards move a user of another persona to the engineers.
    for user in (
        next(u for u in world.known if u.persona == "engineer"),
        next(u for u in world.known if world.model.cluster_of(u.uid) != target),
    ):
        collab.warm_start(engine, world.model, users=[user.uid])
        own = prior.own_prior(user.uid)
        assert own is not None and own[0] == world.model.cluster_of(user.uid)
        engine.learn([Feedback(user.uid, f.arm, f.reward, d.context) for f in feedback])
        [chosen] = collab.refine_cluster_priors(engine, prior, [user.uid])
        assert chosen == target, user.persona
        if own[0] == target:  # kept: their own prior, not the cluster's
            mean = engine.users.prior_mean[engine.users.ids[user.uid], : len(own[1])]
            np.testing.assert_allclose(mean, own[1], rtol=1e-5, atol=1e-6)


def test_refine_reads_every_request_not_only_the_first(world) -> None:
    """Naive Bayes over requests: a user who first says "ok", then writes in Japanese, gets the
    Japanese group's prior although their (uninformative) rewards favour no cluster."""
    engine = Engine(random_state=0)
    collab.warm_start(engine, world.model, users=[])
    prior = engine.cold_start
    fans = [u for u in world.known if u.persona == "ja_casual"]
    target = np.bincount([world.model.cluster_of(u.uid) for u in fans]).argmax()
    [d] = engine.decide([DecisionRequest("t/quiet", "ok")])
    engine.learn([Feedback("t/quiet", d.arm, 0.5, d.context)])
    assert collab.refine_cluster_priors(engine, prior, ["t/quiet"]).tolist() != [target]
    later = ContextSpec().featurize(
        ["なぜ空は青いのですか", "カレーの作り方を教えて", "猫の名前を考えて"]
    )
    engine.learn([Feedback("t/quiet", d.arm, 0.5, c) for c in later])
    chosen = collab.refine_cluster_priors(engine, prior, ["t/quiet"] * 3, later)
    assert chosen.tolist() == [target] * 3
    # past max_feedback the user keeps their prior and their request evidence is dropped
    assert collab.refine_cluster_priors(engine, prior, ["t/quiet"], max_feedback=2).tolist() == [-1]
    assert prior.log_prior("t/quiet").tolist() == pytest.approx(np.log(prior.shares).tolist())


def test_cluster_stats_measure_the_members_spread() -> None:
    """Method of moments on Bernoulli thumbs recovers a known spread of members around their
    cluster from a few events per cell."""
    rng = np.random.default_rng(0)
    n_users, n_arms, events, spread = 2000, 16, 100, 0.08
    labels = rng.integers(2, size=n_users)
    base = rng.uniform(0.3, 0.7, size=(2, n_arms))
    p = np.clip(base[labels] + spread * rng.standard_normal((n_users, n_arms)), 0, 1)
    users = np.repeat(np.arange(n_users), events)
    arms = rng.integers(n_arms, size=len(users))
    df = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in users],
            "arm": arms,
            "reward": (rng.random(len(users)) < p[users, arms]).astype(float),
        }
    )
    ids = np.array([f"u{i}" for i in range(n_users)])
    stats = cluster_stats(df, ids, labels, np.full((2, n_arms), 0.5), rng)
    assert stats.member_var == pytest.approx(spread**2, rel=0.25)
    assert stats.noise_var == pytest.approx(np.mean(p * (1 - p)), rel=0.1)
    np.testing.assert_allclose(stats.rewards, base, atol=0.05)


def test_cold_precision_comes_from_the_members_spread(world) -> None:
    engine = Engine(random_state=0)
    collab.warm_start(engine, world.model, users=[])
    meta = world.model.meta
    assert 0 < meta["member_var"] < meta["noise_var"]
    pmap = collab.PriorMap(engine, world.model, collab.Priors())
    expected = meta["noise_var"] * pmap.arm_norm2 / meta["member_var"]
    assert engine.cold_start.precision == pytest.approx(expected)
    collab.warm_start(engine, world.model, users=[], priors=collab.Priors(cold=50.0))
    assert engine.cold_start.precision == 50.0
