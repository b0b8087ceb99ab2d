"""Batch kernels that score and decide for many requests: decide, the posterior-mean rewards
and the posterior summaries that profiles show.

``decide_serial``/``mean_batch_serial`` serve single requests and small batches;
``*_parallel`` are the same code compiled with ``prange`` across cores, for large batches.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from bandit._config import parallel, serial
from bandit._kernels.linalg import factor_scores, posterior
from bandit._kernels.rng import seed_draws
from bandit._kernels.select import (
    POLICY_LINTS,
    POLICY_LINUCB,
    POLICY_UNIFORM,
    apply_floor_and_pick,
    greedy_family,
    ts_distribution,
    ucb_distribution,
)
from bandit._kernels.shared import shared_terms


@serial
def shared_row(W: np.ndarray, attributes: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """``out[a] = attributes[a] @ W @ c``: the population's interaction term for one request."""
    p = W.shape[0]
    wc = np.empty(p)
    for r in range(p):
        s = 0.0
        for q in range(W.shape[1]):
            s += W[r, q] * c[q]
        wc[r] = s
    attribute_scores(attributes, wc, out)


@serial
def attribute_scores(attributes: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
    """``out[a] = attributes[a] @ g`` for every arm."""
    for a in range(attributes.shape[0]):
        s = 0.0
        for r in range(g.shape[0]):
            s += attributes[a, r] * g[r]
        out[a] = s


@serial
def mean_scores(X: np.ndarray, mu: np.ndarray, shared: np.ndarray, out: np.ndarray) -> None:
    """``out[a] = X[a] @ mu + shared[a]`` for every arm."""
    for a in range(X.shape[0]):
        s = shared[a]
        for j in range(X.shape[1]):
            s += X[a, j] * mu[j]
        out[a] = s


def _decide(
    code,
    param,
    n_min,
    n_max,
    floor,
    noise_sd,
    rows,
    tenant,
    A,
    B,
    XT,
    attributes,
    shared_mean,
    shared_cov,
    contexts,
    mask,
    pool,
    seeds,
    dist_out,
    arms_out,
    mu_out,
    score_out,
):
    """Decide for request ``i``: user row ``rows[i]`` (of tenant row ``tenant[rows[i]]``),
    context ``contexts[i]``, allowed arms ``mask[i]`` and seed ``seeds[i]``. Writes the action
    distribution ``dist_out[i]``, the arm ``arms_out[i]``, the posterior mean ``mu_out[i]`` and
    the user's score of the arm ``score_out[i]``; ``code, param, n_min, n_max`` are
    ``Policy.kernel_args()``. The shared model's terms (their uncertainty in the user's noise
    units, ``noise_sd``) enter LinTS's draws and LinUCB's widths."""
    n = rows.shape[0]
    d, n_arms = XT.shape
    p = attributes.shape[1]
    pool_rows = pool.shape[0] - n_max
    for i in prange(n):
        L = np.empty((d, d))
        GT = np.empty((d, n_arms))
        shared = np.empty(n_arms)
        m = np.empty(n_arms)
        g = np.empty(p)
        sv = np.empty(p)
        t = tenant[rows[i]]
        offset, u = seed_draws(seeds[i], pool_rows)
        shared_terms(shared_mean[t], shared_cov[t], contexts[i], g, sv)
        attribute_scores(attributes, g, shared)
        if code == POLICY_UNIFORM:
            greedy_family(code, param, shared, mask[i], dist_out[i])
            for j in range(d):
                mu_out[i, j] = 0.0  # the uniform policy never looks at the posterior
            for a in range(n_arms):
                m[a] = shared[a]
        else:
            factor_scores(A[rows[i]], B[rows[i]], XT, shared, L, GT, m, mu_out[i])
            if code == POLICY_LINTS:
                for s in range(p):
                    sv[s] = param * math.sqrt(max(sv[s], 0.0)) / noise_sd
                offset2 = (offset + pool_rows // 2) % pool_rows
                ts_distribution(
                    GT, m, param, mask[i], pool, offset, n_min, n_max, dist_out[i], L, sv, offset2
                )
            elif code == POLICY_LINUCB:
                for s in range(p):
                    sv[s] = math.sqrt(max(sv[s], 0.0)) / noise_sd
                ucb_distribution(GT, m, param, mask[i], dist_out[i], attributes, sv)
            else:
                greedy_family(code, param, m, mask[i], dist_out[i])
        arm = apply_floor_and_pick(dist_out[i], mask[i], floor, u)
        arms_out[i] = arm
        score_out[i] = m[arm] - shared[arm]


decide_serial = serial(_decide)
decide_parallel = parallel(_decide)


def _mean_batch(rows, tenant, A, B, X, attributes, shared_mean, contexts, out):
    """Posterior-mean reward of every arm, shape (n, n_arms): the model's own prediction."""
    d = X.shape[1]
    for i in prange(rows.shape[0]):
        L = np.empty((d, d))
        Linv = np.empty((d, d))
        mu = np.empty(d)
        shared = np.empty(X.shape[0])
        shared_row(shared_mean[tenant[rows[i]]], attributes, contexts[i], shared)
        posterior(A[rows[i]], B[rows[i]], L, Linv, mu)
        mean_scores(X, mu, shared, out[i])


mean_batch_serial = serial(_mean_batch)
mean_batch_parallel = parallel(_mean_batch)


@serial
def posterior_batch(rows, A, B, mu_out, var_out):
    """Posterior mean (n, d) and marginal variances (n, d) of the given users."""
    d = mu_out.shape[1]
    L = np.empty((d, d))
    Linv = np.empty((d, d))
    for i in range(rows.shape[0]):
        posterior(A[rows[i]], B[rows[i]], L, Linv, mu_out[i])
        for j in range(d):  # diag(A^-1) = column sums of Linv**2
            var_out[i, j] = 0.0
        for r in range(d):
            for j in range(r + 1):
                var_out[i, j] += Linv[r, j] * Linv[r, j]
