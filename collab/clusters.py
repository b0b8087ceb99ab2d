"""Groups of users: k-means over user factors, and a classifier from a first request to a group.

The groups give new users a prior better than the population's (when their first request says
something about them) and give serving stacks a per-group adapter id.
"""

from __future__ import annotations

import numpy as np

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
