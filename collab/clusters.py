"""Groups of users: k-means over user factors, a classifier from a request to a group, and each
group's mean reward per arm with how far its members stray from it.

The groups give new users a prior better than the population's (when their first request says
something about them) and give serving stacks a per-group adapter id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# Above this many users, MiniBatchKMeans fits the groups on a seeded sample of this many and
# every user is then assigned to the nearest center: fitting on everyone costs many times
# more, and a sample this size places the centers as well as the whole population does.
MINIBATCH_ABOVE = 50_000
KMEANS_SAMPLE = 100_000
# The classifier is kept only if it beats always guessing the largest cluster by this much
# (held-out accuracy); otherwise new users get the population prior.
MIN_GAIN = 0.05


def fit_clusters(
    user_factors: np.ndarray,
    arm_factors: np.ndarray,
    k: int,
    rng: np.random.Generator,
    contexts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels (n,) int64 and centers (k, factors) float32 of the users.

    The factors enter in the metric of the predicted scores: with ``V^T V = L L^T``,
    ``|(u1 - u2) L| = |(u1 - u2) V^T|``, so two users are close when they would rank the arms
    alike, whatever directions of the factor space the arms leave unused.

    ``contexts`` (n, width), each user's mean request features (NaN rows: unknown), joins them
    with equal weight (each block centered and scaled to unit mean squared norm): a group is
    then users who rank strategies alike *and write alike*, which is what a new user's
    requests can reveal. On scores alone, with a hundred thumbs per user, personas that differ
    in one level end up mixed in the same groups on the simulated community, and the group's
    prior is a blend that ranks none of them right. A user without requests is
    placed by the scores alone. Centers are the members' mean factors.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    u = np.asarray(user_factors, dtype=np.float64)
    seed = int(rng.integers(2**31 - 1))
    if k <= 1:
        return np.zeros(len(u), dtype=np.int64), u.mean(axis=0, keepdims=True).astype(np.float32)
    v = np.asarray(arm_factors, dtype=np.float64)
    gram = v.T @ v
    chol = np.linalg.cholesky(gram + 1e-9 * np.trace(gram) * np.eye(len(gram)) + 1e-12)
    scores = u @ chol
    x = unit_rows(scores - scores.mean(axis=0))
    if contexts is not None:
        c = np.asarray(contexts, dtype=np.float64)
        known = ~np.isnan(c).any(axis=1)
        if known.sum() >= k:
            block = np.zeros_like(c)
            seen = c[known]
            block[known] = unit_rows(seen - seen.mean(axis=0))
            x = np.hstack([x, block])
    x = x.astype(np.float32)
    km: KMeans | MiniBatchKMeans
    if len(x) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
        sample = rng.choice(len(x), size=min(KMEANS_SAMPLE, len(x)), replace=False)
        labels = km.fit(x[np.sort(sample)]).predict(x).astype(np.int64)
    else:
        km = KMeans(n_clusters=k, random_state=seed, n_init=4)
        labels = km.fit_predict(x).astype(np.int64)
    return labels, member_means(u, labels, k)


def member_means(user_factors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Each cluster's center, the mean factors of its members, shape (k, factors) float32; a
    cluster without members gets every user's mean (zeros without users)."""
    u = np.asarray(user_factors, dtype=np.float64)
    sums = np.stack([np.bincount(labels, weights=col, minlength=k) for col in u.T], axis=1)
    sizes = np.bincount(labels, minlength=k)[:, None]
    everyone = u.mean(axis=0) if len(u) else np.zeros(u.shape[1])
    return np.where(sizes > 0, sums / np.maximum(sizes, 1), everyone).astype(np.float32)


def unit_rows(block: np.ndarray) -> np.ndarray:
    """``block`` scaled so its rows have unit mean squared norm."""
    return block / max(float(np.sqrt(np.mean(np.sum(block**2, axis=1)))), 1e-12)


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
    if len(np.unique(y[train])) < 2 or not test.any():
        return (*empty, None)  # few users: the split left one group to learn, or none to test
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


@dataclass(frozen=True)
class ClusterStats:
    """What the members' own events say about their clusters.

    Attributes
    ----------
    rewards : ndarray of float64, shape (k, n_arms)
        Mean observed reward per cluster and arm, shrunk toward a smooth model of the
        cluster's rewards (empirical Bayes, see ``cluster_stats``).
    quirk_var : float
        Variance of a cluster's reward of an arm around that smooth model (the per-strategy
        effects the attributes do not explain), which sets the shrinkage.
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
    quirk_var: float


def cluster_stats(
    interactions: pl.DataFrame,
    user_ids: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    rng: np.random.Generator,
    *,
    attributes: np.ndarray | None = None,
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
    attributes : ndarray, shape (n_arms, width), optional
        The arms' attribute one-hots; the smooth model is then each cluster's least-squares
        fit of its mean rewards on them (else ``predicted``).
    max_rows : int
        A seeded sample of whole users, about this many events, is enough: each cell needs
        tens of events, not millions, and whole users keep each member's cells intact.

    Notes
    -----
    The cold-start prior is a cluster's *typical reward per arm*. The center's factor scores
    give it only through the low-rank model (the per-strategy quirks the factors miss are
    lost, and they outweigh the members' own spread), while the members' events measure it
    directly but noisily: a hundred users with a hundred thumbs each over 128 arms leave about
    80 events per cell, a standard error of 0.05, as large as the quirks themselves. So each
    cell's mean ``rbar`` (``n`` events) is shrunk toward the smooth model ``s`` by the
    empirical-Bayes weight ``q / (q + s (1 - s) / n)``, with the quirk variance ``q`` measured
    by the method of moments, ``E (rbar - s)^2 = q + s (1 - s) / n``: the shrunk rewards are
    nearer the members' true means than the raw ones (``tests/collab/test_clusters.py``). An
    arm the cluster never tried gets ``s``.

    ``member_var`` is a method-of-moments estimate from each member's mean reward ``rbar`` of
    an arm over ``n`` events, with ``R`` the cluster's reward and ``p`` the member's
    expectation: ``E (rbar - R)^2 = v + E[p (1 - p)] / n`` and ``E[p (1 - p)] = R (1 - R) - v``,
    so ``v = sum[(rbar - R)^2 - R (1 - R) / n] / sum(1 - 1/n)`` over the cells seen at least
    twice (a cell seen once says nothing about ``v``).
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
    rewards, quirk_var = _shrink(sum_wr, sum_w, predicted, attributes)
    r = np.clip(rewards[at], 0.0, 1.0)
    n = cells["len"].to_numpy().astype(np.float64)
    noise = r * (1.0 - r)
    # cells seen once have expectation 0 here but a variance of about 1/16 each: left in,
    # they swamp the estimate (it came out negative on the simulated community)
    twice = n >= 2
    informative = float(np.sum(1.0 - 1.0 / n[twice]))
    excess = float(np.sum(((wr / np.maximum(w, 1e-12) - r) ** 2 - noise / n)[twice]))
    member_var = excess / informative if informative > 0 else float("nan")
    noise_var = float(np.sum(n * noise) / max(float(n.sum()), 1.0))
    return ClusterStats(rewards, member_var, noise_var, quirk_var)


def _shrink(
    sum_wr: np.ndarray, sum_w: np.ndarray, predicted: np.ndarray, attributes: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Cluster x arm mean rewards shrunk toward a smooth model, and the quirk variance."""
    seen = sum_w > 0
    raw = np.where(seen, sum_wr / np.maximum(sum_w, 1e-12), predicted)
    if attributes is None:
        smooth, params = predicted, 0
    else:  # each cluster's weighted least-squares fit on the attributes
        root = np.sqrt(sum_w)
        smooth = np.stack(
            [
                attributes @ np.linalg.lstsq(attributes * r[:, None], m * r, rcond=None)[0]
                for m, r in zip(raw, root, strict=True)
            ]
        )
        params = len(raw) * int(np.linalg.matrix_rank(attributes))
    p = np.clip(smooth, 0.02, 0.98)
    noise = p * (1.0 - p) / np.maximum(sum_w, 1e-12)
    excess = float(np.sum(((raw - smooth) ** 2 - noise)[seen]))
    quirk_var = max(excess / max(int(seen.sum()) - params, 1), 1e-6)
    weight = np.where(seen, quirk_var / (quirk_var + noise), 0.0)
    return smooth + weight * (raw - smooth), quirk_var
