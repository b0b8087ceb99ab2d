"""The numbers a decision's explanation is built from, in one kernel call."""

from __future__ import annotations

import numpy as np

from bandit._config import serial


@serial
def explain_terms(
    centring: np.ndarray,
    mu: np.ndarray,
    W: np.ndarray,
    context: np.ndarray,
    dist: np.ndarray,
    out: np.ndarray,
) -> float:
    """The numbers one decision's explanation is built from; returns ``max(dist)``.

    ``centring`` (n_dims, n) holds the chosen arm's level-minus-dimension-mean rows over the
    first ``n`` arm features. Per dimension ``j``, ``out[j]`` is ``[lift, q1, w1, q2, w2]``:
    the user's lift ``centring[j] @ mu[:n]``, then the two request features ``q`` with the
    largest contributions ``(centring[j] @ W[:n])[q] * context[q]`` and those contributions,
    largest first, ties to the lower ``q`` (a stable sort's order).
    """
    n_dims, n = centring.shape
    n_q = W.shape[1]
    contrib = np.empty(n_q)
    for j in range(n_dims):
        lift = 0.0
        for k in range(n):
            lift += centring[j, k] * mu[k]
        for q in range(n_q):
            contrib[q] = 0.0
        for k in range(n):
            c = centring[j, k]
            if c != 0.0:
                for q in range(n_q):
                    contrib[q] += c * W[k, q]
        first = 0
        for q in range(n_q):
            contrib[q] *= context[q]
            if contrib[q] > contrib[first]:
                first = q
        second = 1 if first == 0 else 0
        for q in range(n_q):
            if q != first and contrib[q] > contrib[second]:
                second = q
        out[j, 0] = lift
        out[j, 1] = first
        out[j, 2] = contrib[first]
        out[j, 3] = second
        out[j, 4] = contrib[second]
    best = dist[0]
    for a in range(dist.shape[0]):
        if dist[a] > best:
            best = dist[a]
    return best
