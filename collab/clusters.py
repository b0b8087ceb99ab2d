"""Groups of users: k-means over user factors, a classifier from a request to a group, and each
group's mean reward per arm with how far its members stray from it.

The groups give new users a prior better than the population's (when their first request says
something about them) and give serving stacks a per-group adapter id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# Above this many users MiniBatchKMeans, whose cost does not grow with n per pass.
MINIBATCH_ABOVE = 50_000
# The classifier is kept only if it beats always guessing the largest cluster by this much
# (held-out accuracy); otherwise new users get the population prior.
MIN_GAIN = 0.05


def fit_clusters(
    user_factors: np.ndarray, arm_factors: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels (n,) int64 and centers (k, factors) float32 of the user factors.

    The clustering runs in the metric of the predicted scores: with ``V^T V = L L^T``,
    ``|(u1 - u2) L| = |(u1 - u2) V^T|``, so two users are close when they would rank the arms
    alike, whatever directions of the factor space the arms leave unused.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    u = np.asarray(user_factors, dtype=np.float64)
    seed = int(rng.integers(2**31 - 1))
    if k <= 1:
        return np.zeros(len(u), dtype=np.int64), u.mean(axis=0, keepdims=True).astype(np.float32)
    v = np.asarray(arm_factors, dtype=np.float64)
    gram = v.T @ v
    chol = np.linalg.cholesky(gram + 1e-9 * np.trace(gram) * np.eye(len(gram)) + 1e-12)
    x = (u @ chol).astype(np.float32)
    km: KMeans | MiniBatchKMeans
    if len(x) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(n_clusters=k, random_state=seed, n_init=4)
    labels = km.fit_predict(x).astype(np.int64)
    centers = np.linalg.solve(chol.T, km.cluster_centers_.T.astype(np.float64)).T
    return labels, centers.astype(np.float32)


def fit_classifier(
    samples: tuple[np.ndarray, np.ndarray] | None,
    labels: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Multinomial logistic regression from request features to the user's cluster.

    ``samples`` is ``(contexts (m, width), user rows (m,))`` (see ``matrix.user_contexts``).
    Returns ``(coef (k, width), intercept (k,), held-out accuracy)``, or empty arrays and the
    accuracy (None without contexts) when it does not beat the majority guess by ``MIN_GAIN``.
    The held-out split is by user, so the accuracy is the one a new user's request sees.
    """
    empty = (np.zeros((0, 0)), np.zeros(0))
    if samples is None or k <= 1:
        return (*empty, None)
    contexts, rows = samples
    ok = ~np.isnan(contexts).any(axis=1)
    x, y, rows = contexts[ok], labels[rows[ok]], rows[ok]
    if len(np.unique(rows)) < 4 * k or len(np.unique(y)) < 2:
        return (*empty, None)
    from sklearn.linear_model import LogisticRegression

    test_users = rng.random(int(rows.max()) + 1) < 0.2
    test = test_users[rows]
    train = ~test
    clf = LogisticRegression(C=1.0, max_iter=200, tol=1e-3)
    clf.fit(x[train], y[train])
    accuracy = float((clf.predict(x[test]) == y[test]).mean())
    majority = float(np.bincount(y[test], minlength=k).max() / max(int(test.sum()), 1))
    if accuracy < majority + MIN_GAIN:
        return (*empty, accuracy)
    clf.fit(x, y)  # the kept model sees every row
    coef = np.zeros((k, x.shape[1]))
    intercept = np.full(k, -30.0)  # clusters absent from the rows get ~0 probability
    classes = clf.classes_.astype(np.int64)
    if len(classes) == 2:  # sklearn stores one row for two classes: logit of classes[1]
        coef[classes[1]], intercept[classes[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[classes[0]] = 0.0
    else:
        coef[classes], intercept[classes] = clf.coef_, clf.intercept_
    return coef, intercept, accuracy


# Events a cluster's arm needs before its own mean reward outweighs the centers' prediction.
SHRINK_EVENTS = 10.0


@dataclass(frozen=True)
class ClusterStats:
    """What the members' own events say about their clusters.

    Attributes
    ----------
    rewards : ndarray of float64, shape (k, n_arms)
        Mean observed reward per cluster and arm, shrunk toward the centers' prediction.
    member_var : float
        Variance of a member's expected reward of an arm around ``rewards``: how far one user
        strays from their group (the cold-start prior's width, in reward units); NaN without
        users seen twice on an arm.
    noise_var : float
        Mean variance of one reward around its expectation (about ``r (1 - r)`` for thumbs).
    """

    rewards: np.ndarray
    member_var: float
    noise_var: float


def cluster_stats(
    interactions: pl.DataFrame,
    user_ids: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    rng: np.random.Generator,
    *,
    max_rows: int = 200_000,
) -> ClusterStats:
    """Per-cluster mean rewards per arm, and the spread of members around them.

    Parameters
    ----------
    interactions : polars.DataFrame
        ``user_id, arm, reward`` and optionally ``weight``.
    user_ids, labels : ndarrays, shape (n_users,)
        The model's users and their clusters.
    predicted : ndarray, shape (k, n_arms)
        The cluster centers' calibrated scores.
    rng : numpy.random.Generator
        Picks the users of the sample.
    max_rows : int
        A seeded sample of whole users, about this many events, is enough: each cell needs
        tens of events, not millions, and whole users keep each member's cells intact.

    Notes
    -----
    The cold-start prior is a cluster's *typical reward per arm*. The center's factor scores
    give it only through the low-rank model (the per-strategy quirks the factors miss are
    lost, several times the members' own spread), while the members' events measure it
    directly; each cell is shrunk toward ``predicted`` with ``SHRINK_EVENTS`` pseudo-events, so
    an arm the cluster rarely tried keeps the model's guess.

    ``member_var`` is a method-of-moments estimate from each member's mean reward ``rbar`` of
    an arm over ``n`` events, with ``R`` the cluster's reward and ``p`` the member's
    expectation: ``E (rbar - R)^2 = v + E[p (1 - p)] / n`` and ``E[p (1 - p)] = R (1 - R) - v``,
    so ``v = sum[(rbar - R)^2 - R (1 - R) / n] / sum(1 - 1/n)``: cells seen once carry no
    information about ``v`` and weigh nothing.
    """
    k, n_arms = predicted.shape
    keep = rng.random(len(user_ids)) < max_rows / max(len(interactions), 1)
    index = pl.DataFrame({"user_id": np.asarray(user_ids)[keep], "cluster": labels[keep]})
    weight = pl.col("weight") if "weight" in interactions.columns else pl.lit(1.0)
    cells = (
        interactions.lazy()
        .select("user_id", "arm", "reward", weight.alias("w"))
        .join(index.lazy(), on="user_id", how="inner")
        .group_by("user_id", "cluster", "arm")
        .agg((pl.col("w") * pl.col("reward")).sum().alias("wr"), pl.col("w").sum(), pl.len())
        .collect()
    )
    at = (cells["cluster"].to_numpy(), cells["arm"].to_numpy())
    wr, w = cells["wr"].to_numpy(), cells["w"].to_numpy()
    sum_wr = np.zeros((k, n_arms))
    sum_w = np.zeros((k, n_arms))
    np.add.at(sum_wr, at, wr)
    np.add.at(sum_w, at, w)
    rewards = (sum_wr + SHRINK_EVENTS * predicted) / (sum_w + SHRINK_EVENTS)
    r = np.clip(rewards[at], 0.0, 1.0)
    n = cells["len"].to_numpy().astype(np.float64)
    noise = r * (1.0 - r)
    informative = float(np.sum(1.0 - 1.0 / n))
    excess = float(np.sum((wr / np.maximum(w, 1e-12) - r) ** 2 - noise / n))
    member_var = excess / informative if informative > 0 else float("nan")
    return ClusterStats(rewards, member_var, float(np.sum(n * noise) / max(float(n.sum()), 1.0)))
