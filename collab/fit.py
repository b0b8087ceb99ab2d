"""Training: interactions -> confidence matrix -> implicit ALS (or BPR) -> clusters -> CFModel.

Too little data fails early with ``NotEnoughData`` and counts, never with a degenerate model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bandit import Catalog, check_random_state
from collab.clusters import cluster_stats, fit_classifier, fit_clusters, member_means
from collab.matrix import Interactions, NotEnoughData, Weighting, build_matrix, user_contexts
from collab.model import CFModel

Progress = Callable[[str], None]
MIN_USERS = 20
MIN_ARMS_SEEN = 2
MIN_CELLS = 2


def _new_als(**params: Any) -> Any:
    """implicit's ALS model. Its constructor warns when OpenBLAS runs threaded; every caller here
    runs it under ``threadpool_limits(1, "blas")``, so the warning does not apply."""
    from implicit.cpu.als import AlternatingLeastSquares

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
        return AlternatingLeastSquares(**params)


def _new_bpr(**params: Any) -> Any:
    """implicit's BPR model."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(**params)


def _factorize(
    new_model: Callable[..., Any],
    matrix: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    num_threads: int,
    seed: int,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the implicit model ``new_model`` builds on ``matrix``; its (user, item) factors."""
    model = new_model(
        factors=factors,
        iterations=iterations,
        regularization=regularization,
        num_threads=num_threads,
        random_state=seed,
    )
    model.fit(matrix, show_progress=show_progress)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def _fit_als(matrix: sp.csr_matrix, **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """ALS on the signed confidence matrix (a negative cell is a confident dislike)."""
    return _factorize(_new_als, matrix, **params)


def _fit_bpr(
    matrix: sp.csr_matrix, *, iterations: int, **params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """BPR on the liked cells only (it ranks likes; it has no notion of a dislike), for at
    least 50 epochs: its SGD needs more passes than ALS's sweeps (implicit's own defaults are
    100 and 15).

    implicit's BPR keeps an item-bias column at the end of the item factors and a matching
    column of ones in the user factors; both are kept so ``U @ V.T`` is its score.
    """
    liked = matrix.copy()
    liked.data = np.where(liked.data > 0, 1.0, 0.0).astype(np.float32)
    liked.eliminate_zeros()
    return _factorize(_new_bpr, liked, iterations=max(iterations, 50), **params)


TRAINERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "als": _fit_als,
    "bpr": _fit_bpr,
}


def make_trainer(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The factorization routine registered as ``name`` (one of ``TRAINERS``)."""
    try:
        return TRAINERS[name]
    except KeyError:
        raise ValueError(f"model must be one of {sorted(TRAINERS)}, got {name!r}") from None


def fit(
    interactions: pl.DataFrame,
    *,
    factors: int = 16,
    model: str = "als",
    iterations: int = 15,
    regularization: float = 0.05,
    weighting: Weighting | None = None,
    n_clusters: int = 8,
    arm_ids: Sequence[str] | None = None,
    catalog: Catalog | None = None,
    num_threads: int = 2,
    version: int | None = None,
    min_users: int = MIN_USERS,
    classifier_rows: int = 20_000,
    context_rows: int = 200_000,
    show_progress: bool = False,
    progress: Progress | None = None,
    random_state: Any = None,
) -> CFModel:
    """Fit a CF model on interactions.

    Parameters
    ----------
    interactions : polars.DataFrame
        ``user_id: str, arm: int, reward: float, ts: float``, optionally ``weight: float`` and
        ``context: list[float]`` (the request features; each user's first one trains the
        cold-start classifier).
    factors : int
        Latent dimension; ``warm_start`` fits at most ``n_features - attribute width`` (17 for
        the default catalog at 32 features) and rotates larger models onto their top directions.
    model : {"als", "bpr"}
    weighting : Weighting, optional
        How rewards become confidences.
    n_clusters : int
        k of the k-means over user factors (the cold-start groups and adapter ids).
    arm_ids, catalog : optional
        Strategy ids of the arm indices; ``arm_ids`` wins, else the catalog's (default: the
        shipped catalog).
    classifier_rows : int
        Requests (a seeded sample) the cold-start classifier trains on.
    context_rows : int
        Requests (a seeded sample) whose per-user means join the clustering
        (``clusters.fit_clusters``).
    version : int, optional
        Defaults to the training time in milliseconds, so later runs have higher versions.
    progress : callable, optional
        Called with the name of each stage as it starts (``attune train`` drives a bar with it).
    random_state : int, Generator or None

    Returns
    -------
    CFModel

    Raises
    ------
    NotEnoughData
        Fewer than ``min_users`` users or fewer than 2 distinct arms with a preference.
    """
    rng = check_random_state(random_state)
    catalog = catalog or Catalog.default()
    ids = tuple(arm_ids) if arm_ids is not None else catalog.arm_ids
    trainer = make_trainer(model)
    if not 1 <= factors <= 256:
        raise ValueError(f"factors must be in [1, 256], got {factors}")
    if not 1 <= n_clusters <= 256:
        raise ValueError(f"n_clusters must be in [1, 256], got {n_clusters}")
    step = progress or (lambda _stage: None)
    step("matrix")
    data = build_matrix(interactions, len(ids), weighting)
    _check_enough(data.matrix, min_users, max(n_clusters, 1))
    step("factorize")
    factorize = partial(
        trainer,
        factors=factors,
        iterations=iterations,
        regularization=regularization,
        num_threads=num_threads,
        seed=int(rng.integers(2**31 - 1)),
    )
    with threadpool_limits(1, "blas"):  # implicit parallelizes itself; nested BLAS threads thrash
        user_f, arm_f = factorize(data.matrix, show_progress=show_progress)
    step("calibrate")
    calibration = _calibrate(data.matrix, data.cell_reward, user_f, arm_f, rng)
    step("cluster")
    k = min(n_clusters, data.matrix.shape[0])
    # one thread: on a busy machine sklearn's OpenMP pool spends more time waiting than working
    with threadpool_limits(1):
        samples = user_contexts(
            interactions, data.user_ids, max_rows=context_rows, seed=int(rng.integers(2**31 - 1))
        )
        means = None if samples is None else _mean_contexts(samples, len(data.user_ids))
        labels, centers = fit_clusters(user_f, arm_f, k, rng, contexts=means)
        if samples is not None and len(samples[1]) > classifier_rows:
            pick = rng.choice(len(samples[1]), size=classifier_rows, replace=False)
            samples = (samples[0][pick], samples[1][pick])
        coef, intercept, accuracy = fit_classifier(samples, labels, k, rng)
        a, b = calibration
        center_rewards = a + b * (centers @ arm_f.T).astype(np.float64)
        stats = cluster_stats(
            interactions,
            data.user_ids,
            labels,
            center_rewards,
            rng,
            attributes=_attributes(catalog, ids),
        )
    weight = 0.0
    if model == "als":
        with threadpool_limits(1, "blas"):
            weight = _individual_weight(
                interactions,
                data,
                weighting,
                partial(factorize, show_progress=False),
                labels,
                stats.rewards,
                rng,
            )
    meta = {
        "factors": factors,
        "iterations": iterations,
        "regularization": regularization,
        "weighting": (weighting or Weighting()).to_dict(),
        "n_interactions": data.n_interactions,
        "nnz": int(data.matrix.nnz),
        "classifier_accuracy": accuracy,
        "member_var": stats.member_var if np.isfinite(stats.member_var) else None,
        "noise_var": stats.noise_var,
        "quirk_var": stats.quirk_var,
        "individual_weight": weight,
        # installs refuse a model trained on another catalog (collab.model.check_catalog)
        "catalog": catalog.identity() if ids == catalog.arm_ids else None,
    }
    return CFModel(
        version=int(version if version is not None else time.time() * 1000),
        cutoff_ts=data.cutoff_ts,
        kind=model,
        user_ids=data.user_ids,
        arm_ids=ids,
        user_factors=np.ascontiguousarray(user_f, dtype=np.float32),
        arm_factors=np.ascontiguousarray(arm_f, dtype=np.float32),
        user_events=data.n_events,
        user_clusters=labels,
        cluster_centers=centers,
        classifier_coef=coef,
        classifier_intercept=intercept,
        cluster_rewards=stats.rewards,
        calibration=calibration,
        meta=meta,
    )


def _individual_weight(
    interactions: pl.DataFrame,
    data: Interactions,
    weighting: Weighting | None,
    factorize: Callable[[sp.csr_matrix], tuple[np.ndarray, np.ndarray]],
    labels: np.ndarray,
    group_rewards: np.ndarray,
    rng: np.random.Generator,
    sample: int = 2000,
) -> float:
    """How much of a known user's factor-predicted deviation from their group holds up on
    events the factors did not see, in [0, 1] (``warm.PriorMap.means`` scales it by this).

    ALS fits each user's factor to their own few events, so the deviation of their predicted
    rewards from their group's mixes taste with noise. For a sample of users, each one's
    events are split in two at random, and the model is fitted again (``factorize``, the same
    trainer and parameters) on everything but the sampled users' halves B. The least-squares
    slope ``s`` of half B's ``cell reward - group reward`` on the refitted deviation
    ``slope * (u_A - center) . v`` (``center``: the group members' mean refitted factor,
    ``slope``: the refit's calibration) measures its reliability on half the events; the
    Spearman-Brown step ``2 s / (1 + s)`` gives the reliability on all of them.

    The refit is what makes the halves B unseen: the item factors of the full fit learned from
    them too, and with a few events per user and tens of users per arm they remember each
    user's cells, so a deviation measured against them looks reliable when it is noise.
    (Halving the *cells* instead would not do: implicit ALS reads a missing cell as a dislike.)
    """
    n_arms = data.matrix.shape[1]
    users = rng.choice(len(data.user_ids), size=min(sample, len(data.user_ids)), replace=False)
    index = pl.DataFrame({"user_id": data.user_ids[users], "label": labels[users]})
    events = interactions.join(index, on="user_id", how="inner")
    held = pl.Series(rng.random(len(events)) < 0.5)
    train = pl.concat(
        [
            interactions.join(index, on="user_id", how="anti"),
            events.filter(~held).select(interactions.columns),
        ],
        how="vertical_relaxed",
    )
    a = build_matrix(train, n_arms, weighting)
    b = build_matrix(events.filter(held), n_arms, weighting)
    user_f, arm_f = factorize(a.matrix)
    _, slope = _calibrate(a.matrix, a.cell_reward, user_f, arm_f, rng)
    label_of = dict(zip(data.user_ids.tolist(), labels.tolist(), strict=True))
    a_labels = np.array([label_of[u] for u in a.user_ids.tolist()], dtype=np.int64)
    centers = member_means(user_f, a_labels, group_rewards.shape[0]).astype(np.float64)
    a_row = {u: i for i, u in enumerate(a.user_ids.tolist())}
    xs, ys = [], []
    for i, user in enumerate(b.user_ids.tolist()):
        if user not in a_row or slope <= 0:
            continue
        row, label = a_row[user], label_of[user]
        lo, hi = b.matrix.indptr[i], b.matrix.indptr[i + 1]
        arms = b.matrix.indices[lo:hi]
        offset = slope * (user_f[row].astype(np.float64) - centers[label])
        xs.append(offset @ arm_f[arms].T)
        ys.append(b.cell_reward[lo:hi] - group_rewards[label, arms])
    if not xs:
        return 0.0
    x, y = np.concatenate(xs), np.concatenate(ys)
    s = float(np.clip((x @ y) / max(float(x @ x), 1e-12), 0.0, 1.0))
    return 2 * s / (1 + s)


def _mean_contexts(samples: tuple[np.ndarray, np.ndarray], n_users: int) -> np.ndarray:
    """Each user's mean request features, shape (n_users, width); NaN rows for users absent
    from the sample."""
    contexts, rows = samples
    ok = ~np.isnan(contexts).any(axis=1)
    contexts, rows = contexts[ok], rows[ok]
    sums = np.zeros((n_users, contexts.shape[1]))
    np.add.at(sums, rows, contexts)
    counts = np.bincount(rows, minlength=n_users)[:, None]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _attributes(catalog: Catalog, arm_ids: Sequence[str]) -> np.ndarray | None:
    """The attribute one-hots of ``arm_ids`` in that order, None if the catalog lacks one."""
    try:
        rows = [catalog.arm_index(a) for a in arm_ids]
    except KeyError:
        return None
    return catalog.attributes[np.array(rows, dtype=np.int64)]


def _check_enough(matrix: sp.csr_matrix, min_users: int, k: int) -> None:
    """A user with one preference says nothing about which arms go together: count users with
    at least ``MIN_CELLS`` cells."""
    n_users = int((np.diff(matrix.indptr) >= MIN_CELLS).sum())
    arms_seen = int((np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0).sum())
    if n_users < max(min_users, k):
        raise NotEnoughData(
            f"too little data to train: {n_users} users with feedback on at least {MIN_CELLS} "
            f"strategies, need at least {max(min_users, k)}"
        )
    if arms_seen < MIN_ARMS_SEEN:
        raise NotEnoughData(
            f"too little data to train: feedback on {arms_seen} arm(s), need at least "
            f"{MIN_ARMS_SEEN}"
        )


def _calibrate(
    matrix: sp.csr_matrix,
    cell_reward: np.ndarray,
    user_f: np.ndarray,
    arm_f: np.ndarray,
    rng: np.random.Generator,
    sample: int = 200_000,
) -> tuple[float, float]:
    """Least-squares line from a cell's factor score to its mean reward, on a sample of cells.

    The factors predict preference (0/1) weighted by confidence, not reward; this line puts
    their scores on the reward scale the bandit's posterior lives on.
    """
    nnz = matrix.nnz
    pick = rng.choice(nnz, size=min(sample, nnz), replace=False) if nnz > sample else np.arange(nnz)
    rows = np.searchsorted(matrix.indptr, pick, side="right") - 1
    cols = matrix.indices[pick]
    score = np.einsum("ij,ij->i", user_f[rows], arm_f[cols]).astype(np.float64)
    reward = cell_reward[pick].astype(np.float64)
    if score.std() < 1e-9:
        return float(reward.mean()), 0.0
    b, a = np.polyfit(score, reward, 1)
    return float(a), float(max(b, 0.0))
