"""Training: interactions -> confidence matrix -> implicit ALS (or BPR) -> clusters -> CFModel.

Too little data fails early with ``NotEnoughData`` and counts, never with a degenerate model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bandit import Catalog, check_random_state
from collab.clusters import cluster_stats, fit_classifier, fit_clusters
from collab.matrix import NotEnoughData, Weighting, build_matrix, user_contexts
from collab.model import CFModel

Progress = Callable[[str], None]
MIN_USERS = 20
MIN_ARMS_SEEN = 2
MIN_CELLS = 2


def _fit_als(
    matrix: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    num_threads: int,
    seed: int,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares

    with warnings.catch_warnings():  # fit() runs under threadpool_limits(1, "blas") already
        warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
        model = AlternatingLeastSquares(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            num_threads=num_threads,
            random_state=seed,
        )
    model.fit(matrix, show_progress=show_progress)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def _fit_bpr(
    matrix: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    num_threads: int,
    seed: int,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    liked = matrix.copy()
    liked.data = np.where(liked.data > 0, 1.0, 0.0).astype(np.float32)  # BPR ranks likes only
    liked.eliminate_zeros()
    model = BayesianPersonalizedRanking(
        factors=factors,
        iterations=max(iterations, 50),
        regularization=regularization,
        num_threads=num_threads,
        random_state=seed,
    )
    model.fit(liked, show_progress=show_progress)
    # implicit's BPR keeps an item-bias column at the end of the item factors and a matching
    # column of ones in the user factors; both are kept so ``U @ V.T`` is its score.
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


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
    ids = tuple(arm_ids) if arm_ids is not None else (catalog or Catalog.default()).arm_ids
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
    seed = int(rng.integers(2**31 - 1))
    with threadpool_limits(1, "blas"):  # implicit parallelizes itself; nested BLAS threads thrash
        user_f, arm_f = trainer(
            data.matrix,
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            num_threads=num_threads,
            seed=seed,
            show_progress=show_progress,
        )
    step("calibrate")
    calibration = _calibrate(data.matrix, data.cell_reward, user_f, arm_f, rng)
    step("cluster")
    k = min(n_clusters, data.matrix.shape[0])
    # one thread: on a busy machine sklearn's OpenMP pool spends more time waiting than working
    with threadpool_limits(1):
        labels, centers = fit_clusters(user_f, arm_f, k, rng)
        samples = user_contexts(
            interactions, data.user_ids, max_rows=classifier_rows, seed=int(rng.integers(2**31 - 1))
        )
        coef, intercept, accuracy = fit_classifier(samples, labels, k, rng)
        a, b = calibration
        stats = cluster_stats(
            interactions,
            data.user_ids,
            labels,
            a + b * (centers @ arm_f.T).astype(np.float64),
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
