"""Posterior algebra on one user's packed precision: Cholesky factor, triangular solves and
the scores a decision needs, all without forming an inverse where a solve will do."""

from __future__ import annotations

import math

import numpy as np

from bandit._config import serial


@serial
def chol_from_packed(ap: np.ndarray, out: np.ndarray) -> None:
    """Cholesky factor L (lower, in ``out``) of the packed symmetric matrix ``ap``.

    A pivot that is not positive (round-off on a near-singular matrix) is replaced by a tiny
    positive number, so the factor always exists; the posterior it describes is then very wide
    in that direction, which is the safe side for exploration.
    """
    d = out.shape[0]
    for i in range(d):
        base = i * (i + 1) // 2
        for j in range(i + 1):
            out[i, j] = ap[base + j]
        for j in range(i + 1, d):
            out[i, j] = 0.0
    for j in range(d):
        s = out[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if s <= 1e-12:
            s = 1e-12
        ljj = math.sqrt(s)
        out[j, j] = ljj
        inv = 1.0 / ljj  # one divide per column, not per entry: divides do not pipeline
        for i in range(j + 1, d):
            t = out[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t * inv


@serial
def inverse_lower(L: np.ndarray, out: np.ndarray) -> None:
    """``out = L^-1`` for lower-triangular L, built row by row from earlier rows (each step a
    contiguous axpy, which vectorizes; the textbook column loop does not)."""
    d = L.shape[0]
    for i in range(d):
        row = out[i]
        for j in range(d):
            row[j] = 0.0
        for k in range(i):
            c = L[i, k]
            prev = out[k]
            for j in range(k + 1):
                row[j] -= c * prev[j]
        inv = 1.0 / L[i, i]
        for j in range(i):
            row[j] *= inv
        row[i] = inv


@serial
def posterior(
    ap: np.ndarray, b: np.ndarray, L: np.ndarray, Linv: np.ndarray, mu: np.ndarray
) -> None:
    """Cholesky factor ``L`` of the precision, its inverse ``Linv`` and the posterior mean
    ``mu = Linv.T @ Linv @ b``."""
    d = mu.shape[0]
    chol_from_packed(ap, L)
    inverse_lower(L, Linv)
    for j in range(d):
        mu[j] = 0.0
    for i in range(d):
        y = 0.0
        row = Linv[i]
        for k in range(i + 1):
            y += row[k] * b[k]
        for j in range(i + 1):
            mu[j] += y * row[j]


@serial
def forward_solve(L: np.ndarray, rhs: np.ndarray, out: np.ndarray) -> None:
    """Solve ``L @ out = rhs`` for lower-triangular L (rows of L contiguous)."""
    for i in range(L.shape[0]):
        s = rhs[i]
        for k in range(i):
            s -= L[i, k] * out[k]
        out[i] = s / L[i, i]


@serial
def backward_solve(L: np.ndarray, rhs: np.ndarray, out: np.ndarray) -> None:
    """Solve ``L.T @ out = rhs`` for lower-triangular L."""
    d = L.shape[0]
    for i in range(d - 1, -1, -1):
        s = rhs[i]
        for k in range(i + 1, d):
            s -= L[k, i] * out[k]
        out[i] = s / L[i, i]


@serial
def forward_many(L: np.ndarray, XT: np.ndarray, GT: np.ndarray) -> None:
    """``GT = L^-1 @ XT`` for the (d, n_arms) arm-feature matrix: row by row, each step an axpy
    across all arms (long, contiguous, vectorized), instead of one solve per arm."""
    d, n_arms = XT.shape
    for i in range(d):
        row = GT[i]
        for a in range(n_arms):
            row[a] = XT[i, a]
        for k in range(i):
            c = L[i, k]
            if c != 0.0:
                prev = GT[k]
                for a in range(n_arms):
                    row[a] -= c * prev[a]
        inv = 1.0 / L[i, i]
        for a in range(n_arms):
            row[a] *= inv


@serial
def factor_scores(
    ap: np.ndarray,
    b: np.ndarray,
    XT: np.ndarray,
    shared: np.ndarray,
    L: np.ndarray,
    GT: np.ndarray,
    m: np.ndarray,
    mu: np.ndarray,
) -> None:
    """Everything a decision needs from one user's posterior, without inverting anything.

    With ``A = L L^T``: ``GT = L^-1 X^T`` (d, n_arms); the posterior-mean scores
    ``m = shared + X mu = shared + GT^T (L^-1 b)``; the posterior mean ``mu = L^-T L^-1 b``.
    A Thompson draw's scores are then ``m + scale * GT^T z`` and LinUCB's widths are the
    column norms of ``GT``.
    """
    d, n_arms = XT.shape
    w = np.empty(d)
    chol_from_packed(ap, L)
    forward_many(L, XT, GT)
    forward_solve(L, b.astype(np.float64), w)
    for a in range(n_arms):
        m[a] = shared[a]
    for i in range(d):
        wi = w[i]
        row = GT[i]
        for a in range(n_arms):
            m[a] += wi * row[a]
    backward_solve(L, w, mu)


@serial
def user_score(
    ap: np.ndarray, b: np.ndarray, x: np.ndarray, L: np.ndarray, tmp: np.ndarray
) -> float:
    """``x @ mu`` for the posterior mean ``mu = A^-1 b``, by ``x @ A^-1 b = (L^-1 x).(L^-1 b)``:
    one factorization and two forward solves, no inverse."""
    w = np.empty(x.shape[0])
    chol_from_packed(ap, L)
    forward_solve(L, x, tmp)
    forward_solve(L, b.astype(np.float64), w)
    s = 0.0
    for i in range(x.shape[0]):
        s += tmp[i] * w[i]
    return s
