"""Groups of users: clustering on scores and requests, shrunk group rewards, individual weight."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import collab
from bandit import Catalog
from collab.clusters import cluster_stats, fit_clusters


def _purity(labels: np.ndarray, truth: np.ndarray) -> float:
    k = labels.max() + 1
    return sum(np.bincount(truth[labels == c]).max() for c in range(k) if (labels == c).any()) / (
        len(labels)
    )


def test_clusters_join_how_users_write() -> None:
    """Two groups with the same tastes but different languages, two with different tastes:
    the scores alone cannot split the first pair, the requests can; users without requests
    are still placed by their scores."""
    rng = np.random.default_rng(0)
    n, f, width = 400, 4, 6
    truth = np.repeat(np.arange(4), n // 4)
    taste = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    factors = taste[truth] + 0.1 * rng.standard_normal((n, f))
    arms = rng.standard_normal((20, f))
    writing = np.eye(width)[[0, 1, 2, 3]][truth] + 0.1 * rng.standard_normal((n, width))
    alone, _ = fit_clusters(factors, arms, 4, np.random.default_rng(1))
    both, centers = fit_clusters(factors, arms, 4, np.random.default_rng(1), contexts=writing)
    assert _purity(alone, truth) <= 0.8  # the same-taste pair is split at random
    assert _purity(both, truth) == 1.0
    np.testing.assert_allclose(centers[both[0]], factors[both == both[0]].mean(axis=0), rtol=1e-5)
    # users without requests (NaN rows) fall in a group of their taste
    unknown = writing.copy()
    unknown[truth == 3] = np.nan
    labels, _ = fit_clusters(factors, arms, 4, np.random.default_rng(1), contexts=unknown)
    assert len(set(labels[truth == 3].tolist())) == 1
    assert not set(labels[truth == 3].tolist()) & set(labels[truth != 3].tolist())


def _group_events(rng, attributes, quirk_sd, events_per_cell):
    """Two groups whose rewards are an attribute model plus per-arm quirks; Bernoulli events."""
    n_arms, width = attributes.shape
    smooth = np.clip(0.5 + attributes @ rng.normal(0, 0.1, size=(width, 2)), 0.1, 0.9).T
    truth = np.clip(smooth + quirk_sd * rng.standard_normal(smooth.shape), 0.02, 0.98)
    rows = []
    for g in range(2):
        for u in range(20):
            arms = np.repeat(np.arange(n_arms), events_per_cell // 20 + 1)
            rewards = (rng.random(len(arms)) < truth[g, arms]).astype(float)
            rows.append(pl.DataFrame({"user_id": f"g{g}u{u}", "arm": arms, "reward": rewards}))
    ids = np.array([f"g{g}u{u}" for g in range(2) for u in range(20)])
    labels = np.repeat([0, 1], 20)
    return pl.concat(rows), ids, labels, truth


def test_group_rewards_are_shrunk_toward_the_attribute_fit() -> None:
    """Empirical Bayes: the shrunk group rewards are nearer the truth than the raw means, and
    the quirk variance is measured."""
    rng = np.random.default_rng(0)
    attributes = Catalog.default().attributes
    df, ids, labels, truth = _group_events(rng, attributes, quirk_sd=0.06, events_per_cell=40)
    flat = np.full(truth.shape, 0.5)
    stats = cluster_stats(df, ids, labels, flat, rng, attributes=attributes)
    raw = cluster_stats(df, ids, labels, flat, rng, attributes=None)  # toward a flat guess
    cells = df.group_by("arm").len()  # every arm was tried
    assert len(cells) == attributes.shape[0]
    sums = np.zeros_like(truth)
    counts = np.zeros_like(truth)
    group = np.repeat(labels, len(df) // len(ids))
    np.add.at(sums, (group, df["arm"].to_numpy()), df["reward"].to_numpy())
    np.add.at(counts, (group, df["arm"].to_numpy()), 1)
    means = sums / counts

    def rmse(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean((x - truth) ** 2)))

    assert rmse(stats.rewards) < 0.8 * rmse(means), (rmse(stats.rewards), rmse(means))
    assert rmse(stats.rewards) < rmse(raw.rewards)
    assert stats.quirk_var == pytest.approx(0.06**2, rel=0.5)


def test_individual_weight_follows_how_much_users_differ() -> None:
    """Users who all share their group's taste get a small weight on their own factors; users
    with strong tastes of their own and many events get a large one."""
    rng = np.random.default_rng(0)
    n_users, n_arms = 300, 24
    arm_ids = [f"a{i}" for i in range(n_arms)]
    group = rng.uniform(0.2, 0.8, size=(3, n_arms))

    def events(own_sd: float) -> pl.DataFrame:
        labels = np.arange(n_users) % 3
        mu = np.clip(group[labels] + own_sd * rng.standard_normal((n_users, n_arms)), 0.02, 0.98)
        users = np.repeat(np.arange(n_users), 120)
        arms = rng.integers(n_arms, size=len(users))
        return pl.DataFrame(
            {
                "user_id": [f"u{i}" for i in users],
                "arm": arms,
                "reward": (rng.random(len(users)) < mu[users, arms]).astype(float),
                "ts": np.arange(len(users), dtype=float),
            }
        )

    def weight(own_sd: float) -> float:
        model = collab.fit(
            events(own_sd),
            factors=8,
            n_clusters=3,
            arm_ids=arm_ids,
            num_threads=1,
            random_state=0,
        )
        return float(model.meta["individual_weight"])

    shared, own = weight(0.0), weight(0.3)
    assert shared < 0.35 and own > 0.5, (shared, own)


def test_individual_weight_is_measured_on_events_the_factors_never_saw() -> None:
    """Users with no taste of their own and 15 events each over 96 arms: their factors are
    noise, and so the weight is small. Measured against the item factors of the full fit,
    which learned each user's held-out cells too, it came out above 0.5 on this community."""
    rng = np.random.default_rng(0)
    n_users, n_arms, n_events = 600, 96, 15
    group = rng.uniform(0.2, 0.8, size=(3, n_arms))
    users = np.repeat(np.arange(n_users), n_events)
    arms = rng.integers(n_arms, size=len(users))
    p = group[users % 3, arms]
    events = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in users],
            "arm": arms,
            "reward": (rng.random(len(users)) < p).astype(float),
            "ts": np.arange(len(users), dtype=float),
        }
    )
    model = collab.fit(
        events,
        factors=16,
        n_clusters=3,
        arm_ids=[f"a{i}" for i in range(n_arms)],
        num_threads=1,
        random_state=0,
    )
    assert model.meta["individual_weight"] < 0.2, model.meta["individual_weight"]
