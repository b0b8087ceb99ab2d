"""Off-policy estimators: coverage on logs with a known truth, and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.logs import LogError, from_dict
from simulations.ope import ESTIMATORS, evaluate, fit_ridge
from simulations.ope_synthetic import synthetic_log

SEEDS = 50


@pytest.fixture(scope="module")
def replications():
    """Each estimator's estimate and interval on 50 independent logs (2,000 rounds, 10 arms)."""
    out = []
    for seed in range(SEEDS):
        log, target, truth = synthetic_log(n=2000, n_arms=10, random_state=seed)
        out.append((evaluate(log, target, n_bootstrap=200, random_state=seed), truth))
    return out


@pytest.mark.parametrize("name", ESTIMATORS)
def test_95_percent_intervals_cover_the_truth_in_90_percent_of_seeds(replications, name):
    covered = sum(est[name].lower <= truth <= est[name].upper for est, truth in replications)
    assert covered >= 0.9 * SEEDS, f"{name}: covered {covered}/{SEEDS}"


def test_dr_is_more_accurate_than_ips_on_average(replications):
    err = {
        k: np.mean([abs(est[k].value - truth) for est, truth in replications])
        for k in ("ips", "dr")
    }
    assert err["dr"] < err["ips"]


def test_on_policy_ips_is_the_logged_mean():
    log, _, _ = synthetic_log(n=300, random_state=1)
    est = evaluate(
        log, log.action_dist, estimators=["ips", "snips"], n_bootstrap=20, random_state=0
    )
    assert est["ips"].value == pytest.approx(log.reward.mean())
    assert est["snips"].value == pytest.approx(log.reward.mean())
    assert est["ips"].lower <= est["ips"].value <= est["ips"].upper


def test_fixed_reward_model_equals_dm_by_hand():
    log, target, _ = synthetic_log(n=400, random_state=2)
    q = fit_ridge(log, n_arms=10)
    assert q.shape == (400, 10)
    est = evaluate(
        log, target, estimated_rewards=q, estimators=["dm", "dr"], n_bootstrap=20, random_state=0
    )
    assert est["dm"].value == pytest.approx((target * q).sum(axis=1).mean())
    w = target[np.arange(400), log.action] / log.pscore
    dr = (target * q).sum(axis=1) + w * (log.reward - q[np.arange(400), log.action])
    assert est["dr"].value == pytest.approx(dr.mean())


def test_obp_style_dict_is_accepted():
    log, target, _ = synthetic_log(n=200, random_state=3)
    data = {k: v for k, v in log.to_dict().items()}
    data["action_dist"] = data["action_dist"][:, :, None]  # obp's (n, n_actions, len_list)
    est = evaluate(data, target[:, :, None], estimators=["ips"], n_bootstrap=10)
    assert np.isfinite(est["ips"].value)


BAD = [
    ({"pscore": np.zeros(5)}, LogError, r"pscore: every propensity must be in \(0, 1\]"),
    ({"action": -np.ones(5, dtype=int)}, LogError, "action: every action"),
    ({"reward": np.ones(4)}, LogError, r"reward: expected shape \(5,\)"),
    ({"context": None}, LogError, "context: missing"),
]


@pytest.mark.parametrize(("change", "error", "pattern"), BAD)
def test_malformed_logs_name_the_field(change, error, pattern):
    data = {
        "context": np.ones((5, 3)),
        "action": np.zeros(5, dtype=int),
        "reward": np.ones(5),
        "pscore": np.full(5, 0.5),
    }
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(error, match=pattern):
        from_dict(data)


EVAL_BAD = [
    ({"estimators": ["magic"]}, "estimators: unknown 'magic'"),
    ({"confidence": 1.5}, r"confidence must be in \(0, 1\)"),
    ({"n_bootstrap": 2}, "n_bootstrap must be >= 10"),
    ({"estimated_rewards": np.ones((3, 3))}, "estimated_rewards: expected shape"),
]


@pytest.mark.parametrize(("kwargs", "pattern"), EVAL_BAD)
def test_bad_evaluate_arguments_are_refused(kwargs, pattern):
    log, target, _ = synthetic_log(n=50, random_state=0)
    with pytest.raises(ValueError, match=pattern):
        evaluate(log, target, **kwargs)


def test_target_distribution_must_be_a_distribution():
    log, target, _ = synthetic_log(n=50, random_state=0)
    with pytest.raises(ValueError, match="every row must be a probability distribution"):
        evaluate(log, target * 2)
