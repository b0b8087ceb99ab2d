"""Re-choosing a new user's cluster prior as their feedback comes in.

The cold-start prior is picked from one request; when that request says little ("thanks!") or
points at the wrong group, a Gaussian prior around the wrong cluster holds the user back for
many turns. After each of a new user's first feedbacks, ``refine_cluster_priors`` asks which
cluster prior explains the user's evidence best (the Gaussian marginal likelihood of the
linear reward model, times the cluster's share of users) and swaps the prior to that one.

The swap is exact because of how the engine keeps a posterior: with forgetting, the prior's
share of the natural parameters stays ``A = lam I + evidence``, ``b = lam m + evidence``
(``bandit._kernels.learn_batch`` re-adds ``(1 - gamma) lam`` each step), so subtracting the
old prior's part and adding the new one changes the prior and keeps every observation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bandit import Engine
from bandit.state import unpack
from collab.warm import ClusterPrior


def refine_cluster_priors(
    engine: Engine, prior: ClusterPrior, user_ids: Sequence[str], *, max_feedback: int = 20
) -> np.ndarray:
    """Give each user (with fewer than ``max_feedback`` feedbacks) the most likely cluster prior.

    Parameters
    ----------
    engine : Engine
        An engine warm-started with ``prior`` (``engine.cold_start``).
    prior : ClusterPrior
    user_ids : sequence of str
        Users just updated; unknown ids are skipped.
    max_feedback : int
        Users with more evidence than this keep their prior (it no longer matters much, and
        a known user's own CF prior must never be replaced).

    Returns
    -------
    ndarray of int64, shape (n,)
        The chosen cluster per user, -1 where nothing changed.
    """
    state = engine.users
    d = state.d
    means = np.zeros((prior.cluster_means.shape[0], d))
    means[:, : prior.cluster_means.shape[1]] = prior.cluster_means
    log_share = np.log(np.maximum(prior.shares, 1e-12))
    lam_new = prior.precision
    out = np.full(len(user_ids), -1, dtype=np.int64)
    with engine.lock:  # the swap must not interleave with a learn of the same row
        for i, uid in enumerate(user_ids):
            row = state.ids.get(uid)
            if row is None or not 0 < state.n_feedback[row] <= max_feedback:
                continue
            if prior.model.rows([uid])[0] >= 0:  # a known user keeps their own CF prior
                continue
            lam_old = float(state.prior_prec[row])
            A = unpack(state.A[row].astype(np.float64), d) - lam_old * np.eye(d)
            b = state.B[row].astype(np.float64) - lam_old * state.prior_mean[row]
            k = int(np.argmax(_log_evidence(A, b, means, lam_new) + log_share))
            A += lam_new * np.eye(d)
            b += lam_new * means[k]
            state.A[row] = A[np.tril_indices(d)]
            state.B[row] = b
            state.prior_mean[row] = means[k]
            state.prior_prec[row] = lam_new
            out[i] = k
    return out


def _log_evidence(A: np.ndarray, b: np.ndarray, means: np.ndarray, lam: float) -> np.ndarray:
    """Log marginal likelihood (up to a constant shared by all candidates) of the evidence
    ``(A, b)`` under each prior ``N(means[k], (lam I)^-1)``, shape (k,)."""
    post = A + lam * np.eye(len(A))
    rhs = b[None, :] + lam * means  # (k, d)
    mu = np.linalg.solve(post, rhs.T).T
    return 0.5 * (np.einsum("kd,kd->k", mu, rhs) - lam * np.einsum("kd,kd->k", means, means))
