"""Selection rules: each policy's action distribution over the allowed arms, the exploration
floor, and the draw of the arm from the final distribution."""

from __future__ import annotations

import math

import numpy as np

from bandit._config import serial

# The policy codes the kernels branch on (``Policy.code``).
POLICY_UNIFORM = 0
POLICY_EGREEDY = 1
POLICY_SOFTMAX = 2
POLICY_SQUARECB = 3
POLICY_LINUCB = 4
POLICY_LINTS = 5


@serial
def argmax_masked(scores: np.ndarray, mask: np.ndarray) -> int:
    """Index of the highest score among the allowed arms (the first on ties), -1 if none."""
    best = -1
    best_score = -np.inf
    for a in range(scores.shape[0]):
        if mask[a] and (best < 0 or scores[a] > best_score):
            best = a
            best_score = scores[a]
    return best


@serial
def argmax_from(scores: np.ndarray, first: int) -> int:
    """Index of the highest score from ``first`` on (the first on ties): ``argmax_masked``
    for scores whose masked arms are -inf, ``first`` the first allowed arm."""
    best = first
    top = scores[first]
    for a in range(first + 1, scores.shape[0]):
        if scores[a] > top:
            top = scores[a]
            best = a
    return best


@serial
def greedy_family(
    code: int, param: float, m: np.ndarray, mask: np.ndarray, out: np.ndarray
) -> None:
    """Action distribution of the rules that use only the mean scores ``m``."""
    k = 0
    for a in range(m.shape[0]):
        out[a] = 0.0
        if mask[a]:
            k += 1
    if code == POLICY_UNIFORM:
        for a in range(m.shape[0]):
            if mask[a]:
                out[a] = 1.0 / k
        return
    best = argmax_masked(m, mask)
    if code == POLICY_EGREEDY:
        for a in range(m.shape[0]):
            if mask[a]:
                out[a] = param / k
        out[best] += 1.0 - param
    elif code == POLICY_SOFTMAX:
        total = 0.0
        for a in range(m.shape[0]):
            if mask[a]:
                out[a] = math.exp((m[a] - m[best]) / param)
                total += out[a]
        for a in range(m.shape[0]):
            out[a] /= total
    else:  # SquareCB (Foster & Rakhlin 2020): p_a = 1 / (K + gamma * gap_a)
        rest = 0.0
        for a in range(m.shape[0]):
            if mask[a] and a != best:
                out[a] = 1.0 / (k + param * (m[best] - m[a]))
                rest += out[a]
        out[best] = 1.0 - rest


@serial
def ucb_distribution(
    GT: np.ndarray,
    m: np.ndarray,
    alpha: float,
    mask: np.ndarray,
    out: np.ndarray,
    attributes: np.ndarray,
    sv: np.ndarray,
) -> None:
    """LinUCB: all mass on the arm with the highest ``m + alpha * width_a``, where
    ``width_a^2 = ||L^-1 x_a||^2 + sum_s (attributes[a, s] * sv[s])^2`` adds the shared
    model's uncertainty (``sv``: each attribute column's term's sd, in the user's noise units)
    to the user's."""
    d, n_arms = GT.shape
    width = np.zeros(n_arms)
    for i in range(d):
        row = GT[i]
        for a in range(n_arms):
            width[a] += row[a] * row[a]
    for a in range(n_arms):
        for s in range(sv.shape[0]):
            t = attributes[a, s] * sv[s]
            width[a] += t * t
    for a in range(n_arms):
        out[a] = 0.0
        width[a] = m[a] + alpha * math.sqrt(width[a])
    out[argmax_masked(width, mask)] = 1.0


@serial
def ts_distribution(
    GT: np.ndarray,
    m: np.ndarray,
    scale: float,
    mask: np.ndarray,
    pool: np.ndarray,
    offset: int,
    n_min: int,
    n_max: int,
    out: np.ndarray,
    L: np.ndarray,
    sv: np.ndarray,
    offset2: int,
) -> int:
    """Monte-Carlo estimate of the Thompson-sampling action distribution.

    A draw ``theta = mu + scale * L^-T z`` scores the arms ``m + scale * GT^T z``, with ``z``
    the consecutive rows of ``pool`` starting at ``offset``. The shared model's terms are drawn
    too: ``delta_s = sv[s] * e_s`` per attribute column (``e`` the rows from ``offset2``) moves
    the scores by ``attributes @ delta = GT^T (L^T delta)`` (the attribute columns lead the arm
    features), so a draw costs one coefficient vector more, not another sweep. Each draw's best
    allowed arm is counted. Draws come in blocks of ``n_min`` (``n_max`` is a multiple of it)
    and stop once a block adds no arm the earlier draws had not chosen (a first block that
    agrees on one arm stops at once), or at ``n_max``. Returns the number of draws used. The
    caller then picks the arm *from this distribution*, so the logged propensity is exact for
    the policy that ran.
    """
    d, n_arms = GT.shape
    # Four draws at a time: each loaded row of GT updates four score vectors, so the sweep
    # reads GT a quarter as often as one draw at a time. (Not BLAS: a BLAS call here, after a
    # parallel kernel had run, kept an OpenMP worker spinning for the process's life.)
    # In float32: a draw's scores only pick its best arm, and a vector register holds twice as
    # many float32 lanes as float64 ones, so the sweep does half the vector operations.
    G = np.empty((d, n_arms), dtype=np.float32)
    for i in range(d):
        for a in range(n_arms):
            G[i, a] = GT[i, a]
    # A masked arm's mean is -inf, so each draw's best allowed arm is ``argmax_from`` the
    # first allowed arm, without a branch on the mask.
    mean = np.empty(n_arms, dtype=np.float32)
    first_allowed = -1
    for a in range(n_arms):
        mean[a] = m[a] if mask[a] else -np.inf
        if mask[a] and first_allowed < 0:
            first_allowed = a
    scores = np.empty((4, n_arms), dtype=np.float32)
    # A block's draw coefficients, one column per draw (padded to a multiple of 4). The shared
    # draws' part, (L^T delta)_i = sum_{j >= i} L[j, i] sv[j] e_j, is added one (i, j) pair at
    # a time across the whole block: a contiguous axpy per pair instead of a scalar triangular
    # product per draw.
    width = (n_min + 3) // 4 * 4
    C = np.empty((d, width), dtype=np.float32)
    p = sv.shape[0]
    shared_draws = False
    for j in range(p):
        if sv[j] != 0.0:
            shared_draws = True
    E = np.empty((p, width), dtype=np.float32)
    for a in range(n_arms):
        out[a] = 0.0
    used = 0
    distinct = 0
    while used < n_max:
        before = max(distinct, 1)  # a first block that agrees on one arm is enough
        last = used + n_min - 1  # a block that is not a multiple of 4 repeats its last draw
        for k in range(width):
            row_k = min(used + k, last)
            z = pool[offset + row_k]
            for i in range(d):
                C[i, k] = scale * z[i]
            if shared_draws:
                e = pool[offset2 + row_k]
                for j in range(p):
                    E[j, k] = sv[j] * e[j]
        if shared_draws:
            for j in range(p):
                ej = E[j]
                for i in range(j + 1):
                    lji = np.float32(L[j, i])
                    ci = C[i]
                    for k in range(width):
                        ci[k] += lji * ej[k]
        for first in range(0, width, 4):
            s0, s1, s2, s3 = scores[0], scores[1], scores[2], scores[3]
            for a in range(n_arms):
                s0[a] = mean[a]
                s1[a] = mean[a]
                s2[a] = mean[a]
                s3[a] = mean[a]
            for i in range(d):
                c0, c1, c2, c3 = C[i, first], C[i, first + 1], C[i, first + 2], C[i, first + 3]
                row = G[i]
                for a in range(n_arms):
                    g = row[a]
                    s0[a] += c0 * g
                    s1[a] += c1 * g
                    s2[a] += c2 * g
                    s3[a] += c3 * g
            for j in range(min(4, n_min - first)):  # ...and counts it once
                best = argmax_from(scores[j], first_allowed)
                if out[best] == 0.0:
                    distinct += 1
                out[best] += 1.0
        used += n_min
        if distinct <= before:
            break
    for a in range(n_arms):
        out[a] /= used
    return used


@serial
def apply_floor_and_pick(dist: np.ndarray, mask: np.ndarray, floor: float, u: float) -> int:
    """Mix ``dist`` with the exploration floor over allowed arms and draw an arm with ``u``.

    ``floor`` (in [0, 1)) is the probability mass spread evenly over the ``k`` allowed arms, so
    every allowed arm ends with probability at least ``floor / k``; masked arms get 0.
    """
    k = 0
    total = 0.0
    for a in range(dist.shape[0]):
        if mask[a]:
            k += 1
            total += dist[a]
        else:
            dist[a] = 0.0
    f = floor / k
    keep = 1.0 - floor
    for a in range(dist.shape[0]):
        if mask[a]:
            dist[a] = f + keep * dist[a] / total
    acc = 0.0
    last = -1
    for a in range(dist.shape[0]):
        if mask[a]:
            last = a
            acc += dist[a]
            if u < acc:
                return a
    return last  # u landed past the rounding error of the cumulative sum
