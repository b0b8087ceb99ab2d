"""Learning kernels: feedback into the users' posteriors (rank one, with forgetting toward
the prior) and into the shared interaction weights, in the order it arrived."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bandit._config import serial
from bandit._kernels.linalg import posterior, user_score


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
    contexts: np.ndarray  # (n, n_request_features)
    rewards: np.ndarray  # (n,)
    weights: np.ndarray  # (n,)
    user_scores: np.ndarray  # (n,), 0 where not known
    known: np.ndarray  # (n,) bool: whether user_scores[i] holds the decision-time score
    A: np.ndarray  # users' packed precisions, updated in place
    B: np.ndarray
    prior_mean: np.ndarray
    prior_prec: np.ndarray
    n_obs: np.ndarray
    X: np.ndarray  # (n_arms, d) arm features
    attributes: np.ndarray  # (n_arms, n_attributes)
    W: np.ndarray  # (n_attributes, n_request_features), updated in place
    gamma: float  # forgetting
    steps: np.ndarray  # (n,) the shared model's step sizes


def learn_batch_args(
    feedback: tuple[np.ndarray, ...],
    users: tuple[np.ndarray, ...],
    model: tuple[np.ndarray, ...],
    gamma: float,
    steps: np.ndarray,
) -> LearnBatchArgs:
    """Assemble ``learn_batch``'s arguments.

    ``feedback`` is ``(rows, arms, contexts, rewards, weights, user_scores)`` with NaN where a
    decision-time score is not known (the kernel takes a flag instead: fastmath compiles NaN
    checks away); ``users`` is ``UserState.learning_arrays()``; ``model`` is
    ``(X, attributes, W)``.
    """
    rows, arms, contexts, rewards, weights, user_scores = feedback
    A, B, prior_mean, prior_prec, n_obs = users
    X, attributes, W = model
    known = ~np.isnan(user_scores)
    scores = np.where(known, user_scores, 0.0)
    return LearnBatchArgs(
        *(rows, arms, contexts, rewards, weights, scores, known),
        *(A, B, prior_mean, prior_prec, n_obs),
        *(X, attributes, W, gamma, steps),
    )


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
    X,
    attributes,
    W,
    gamma,
    steps,
):
    """Apply feedback in order: user posteriors (rank one, with forgetting) and shared weights.

    Backfitting: each user's posterior is fit to what the shared model ``W`` (arm attributes x
    request features) leaves unexplained, and ``W`` takes a normalised SGD step on what the
    user's posterior mean leaves unexplained, so the two never compete for the same signal
    (without it, ``W`` absorbs a lone user's taste and their profile shows nothing).
    ``user_scores[i]`` is the user's predicted score ``x_a . mu`` at decision time, used where
    ``known[i]``, else computed now (a flag, not NaN: fastmath compiles NaN checks away).
    ``weights`` scales each observation's precision (1 for a plain reward); ``steps[i]`` is
    the shared model's step size for observation ``i``.
    """
    d = X.shape[1]
    L = np.empty((d, d))
    tmp = np.empty(d)
    for i in range(rows.shape[0]):
        u, a = rows[i], arms[i]
        x = X[a]
        c = contexts[i]
        mine = user_scores[i] if known[i] else user_score(A[u], B[u], x, L, tmp)
        z_norm = 0.0
        pred = 0.0
        for r in range(attributes.shape[1]):
            if attributes[a, r] != 0.0:
                for q in range(c.shape[0]):
                    pred += attributes[a, r] * W[r, q] * c[q]
                    z_norm += (attributes[a, r] * c[q]) ** 2
        y = rewards[i] - pred
        step = steps[i] * (y - mine) / (1.0 + z_norm)
        for r in range(attributes.shape[1]):
            if attributes[a, r] != 0.0:
                for q in range(c.shape[0]):
                    W[r, q] += step * attributes[a, r] * c[q]
        absorb(A[u], B[u], prior_mean[u], prior_prec[u], x, weights[i], weights[i] * y, gamma)
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
