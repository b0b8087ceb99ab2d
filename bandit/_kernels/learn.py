"""Learning kernels: feedback into the users' posteriors (rank one, with forgetting toward
the prior) and into their tenant's shared posterior, in the order it arrived."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bandit._config import serial
from bandit._kernels.linalg import posterior, user_score
from bandit._kernels.shared import shared_update


@serial
def absorb(
    ap: np.ndarray,
    b: np.ndarray,
    prior_mean: np.ndarray,
    prior_prec: float,
    x: np.ndarray,
    h: float,
    g: float,
    gamma: float,
) -> None:
    """One observation into a user's natural parameters, with forgetting toward the prior:
    ``A <- gamma A + (1 - gamma) lam I + h x x^T`` and
    ``b <- gamma b + (1 - gamma) lam m0 + g x`` (``h`` precision weight, ``g`` its target)."""
    lam = prior_prec
    for j in range(x.shape[0]):
        base = j * (j + 1) // 2
        for k in range(j + 1):
            v = gamma * ap[base + k] + h * x[j] * x[k]
            if j == k:
                v += (1.0 - gamma) * lam
            ap[base + k] = v
        b[j] = gamma * b[j] + (1.0 - gamma) * lam * prior_mean[j] + g * x[j]


class LearnBatchArgs(NamedTuple):
    """``learn_batch``'s arguments, in its order: the feedback, the users' state, the model."""

    rows: np.ndarray  # (n,) user rows
    arms: np.ndarray  # (n,)
    contexts: np.ndarray  # (n, n_context)
    rewards: np.ndarray  # (n,)
    weights: np.ndarray  # (n,)
    user_scores: np.ndarray  # (n,), 0 where not known
    known: np.ndarray  # (n,) bool: whether user_scores[i] holds the decision-time score
    A: np.ndarray  # users' packed precisions, updated in place
    B: np.ndarray
    prior_mean: np.ndarray
    prior_prec: np.ndarray
    n_obs: np.ndarray
    tenant: np.ndarray  # (n_rows,) each user row's tenant row
    resid_sum: np.ndarray  # (n_rows,) the empirical prior's per-user sums, updated in place
    x_sum: np.ndarray  # (n_rows, d)
    X: np.ndarray  # (n_arms, d) arm features
    attributes: np.ndarray  # (n_arms, n_attributes)
    shared_mean: np.ndarray  # (n_tenants, n_attributes, n_context), updated in place
    shared_cov: np.ndarray  # (n_tenants, n_attributes, n_context, n_context)
    shared_info: np.ndarray  # (n_tenants, n_attributes, n_context, n_context)
    shared_info_mean: np.ndarray  # (n_tenants, n_attributes, n_context)
    shared_eb: np.ndarray  # (n_tenants, 2): sums of residual pairs and of x_i . x_j
    shared_updates: np.ndarray  # (n_tenants,)
    gamma: float  # forgetting
    noise_var: float  # the reward noise's variance
    eb_keep: float  # the empirical-prior sums keep this much of themselves per observation


def learn_batch_args(
    feedback: tuple[np.ndarray, ...],
    users: tuple[np.ndarray, ...],
    sums: tuple[np.ndarray, ...],
    model: tuple[np.ndarray, ...],
    gamma: float,
    noise_var: float,
    eb_keep: float,
) -> LearnBatchArgs:
    """Assemble ``learn_batch``'s arguments.

    ``feedback`` is ``(rows, arms, contexts, rewards, weights, user_scores)`` with NaN where a
    decision-time score is not known (the kernel takes a flag instead: fastmath compiles NaN
    checks away); ``users`` is ``UserState.learning_arrays()`` and ``sums``
    ``UserState.prior_sums()``; ``model`` is ``(X, attributes, mean, cov, info, info_mean, eb,
    updates)`` of the shared model.
    """
    rows, arms, contexts, rewards, weights, user_scores = feedback
    known = ~np.isnan(user_scores)
    scores = np.where(known, user_scores, 0.0)
    arrays = (rows, arms, contexts, rewards, weights, scores, known, *users, *sums, *model)
    return LearnBatchArgs(*arrays, gamma, noise_var, eb_keep)  # type: ignore[call-arg]


@serial
def learn_batch(
    rows,
    arms,
    contexts,
    rewards,
    weights,
    user_scores,
    known,
    A,
    B,
    prior_mean,
    prior_prec,
    n_obs,
    tenant,
    resid_sum,
    x_sum,
    X,
    attributes,
    shared_mean,
    shared_cov,
    shared_info,
    shared_info_mean,
    shared_eb,
    shared_updates,
    gamma,
    noise_var,
    eb_keep,
):
    """Apply feedback in order: user posteriors (rank one, with forgetting) and the shared
    posterior of each user's tenant.

    Backfitting: each user's posterior is fit to what the shared model leaves unexplained, and
    the shared model learns what the user's posterior mean leaves unexplained, with the user's
    prior variance on the arm counted as noise, so the two never compete for the same signal
    (without it the shared model absorbs a lone user's taste and their profile shows nothing).
    ``user_scores[i]`` is the user's predicted score ``x_a . mu`` at decision time, used where
    ``known[i]``, else computed now. ``weights`` scales each observation's precision (1 for a
    plain reward). Each observation also adds its pairs with the user's earlier residuals to
    the tenant's empirical-prior sums (see ``bandit.shared``).
    """
    d = X.shape[1]
    L = np.empty((d, d))
    tmp = np.empty(d)
    gain = np.empty((shared_mean.shape[1], shared_mean.shape[2]))
    for i in range(rows.shape[0]):
        u, a = rows[i], arms[i]
        t = tenant[u]
        x = X[a]
        w = weights[i]
        mine = user_scores[i] if known[i] else user_score(A[u], B[u], x, L, tmp)
        xx = 0.0
        x_prior = 0.0
        x_pairs = 0.0
        for j in range(d):
            xx += x[j] * x[j]
            x_prior += x[j] * prior_mean[u, j]
            x_pairs += x[j] * x_sum[u, j]
        noise = noise_var / w + noise_var * xx / prior_prec[u]
        pred = shared_update(
            shared_mean[t],
            shared_cov[t],
            shared_info[t],
            shared_info_mean[t],
            attributes[a],
            contexts[i],
            rewards[i] - mine,
            noise,
            gain,
        )
        shared_updates[t] += 1
        # The user learns what the population, updated first, leaves unexplained: the
        # population takes its share of a surprise (its variance's share), the user the rest,
        # so a taste every user has goes to the population, where new users find it.
        after = 0.0
        c = contexts[i]
        for s in range(attributes.shape[1]):
            if attributes[a, s] != 0.0:
                ms = shared_mean[t, s]
                for j in range(c.shape[0]):
                    after += attributes[a, s] * ms[j] * c[j]
        absorb(A[u], B[u], prior_mean[u], prior_prec[u], x, w, w * (rewards[i] - after), gamma)
        e = rewards[i] - pred - x_prior  # the user's deviation from the population as known
        shared_eb[t, 0] = eb_keep * shared_eb[t, 0] + 2.0 * e * resid_sum[u]
        shared_eb[t, 1] = eb_keep * shared_eb[t, 1] + 2.0 * x_pairs
        resid_sum[u] += e
        for j in range(d):
            x_sum[u, j] += x[j]
        n_obs[u] += 1


@serial
def learn_pairwise(rows, x_diff, A, B, prior_mean, prior_prec, n_obs, gamma):
    """Bradley-Terry preference updates: the user preferred the response with features ``x_w``
    over the one with ``x_l``; ``x_diff = x_w - x_l``. One Newton step of the logistic
    likelihood in natural parameters: with ``m = x_diff @ mu`` and ``s = sigmoid(m)``,
    ``A += s(1-s) x x^T`` and ``b += (s(1-s) m + 1 - s) x``."""
    d = x_diff.shape[1]
    L = np.empty((d, d))
    Linv = np.empty((d, d))
    mu = np.empty(d)
    for i in range(rows.shape[0]):
        u = rows[i]
        x = x_diff[i]
        posterior(A[u], B[u], L, Linv, mu)
        m = 0.0
        for j in range(d):
            m += x[j] * mu[j]
        s = 1.0 / (1.0 + math.exp(-m))
        h = max(s * (1.0 - s), 1e-3)
        g = h * m + 1.0 - s
        absorb(A[u], B[u], prior_mean[u], prior_prec[u], x, h, g, gamma)
        n_obs[u] += 1
