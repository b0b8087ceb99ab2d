"""numba kernels of the linear reward model and the selection rules.

Private: the public functions in ``bandit.model`` and ``bandit.policies`` validate and convert,
then call these. Every kernel takes contiguous arrays and scalars only, and each has a plain
NumPy twin in ``tests/bandit/naive.py``.

Per-user state is stored compactly: the posterior precision ``A`` (d x d, symmetric) as its
packed lower triangle in float32, row-major (entry (i, j), j <= i, at ``i*(i+1)//2 + j``), and
the natural mean ``b = A @ mu`` in float32. The arithmetic runs in float64, except the scores of
Thompson draws (float32: they only pick each draw's best arm).

Randomness: a decision's seed is hashed with splitmix64 into an offset into a pool of standard
normal draws (made once by the engine's ``numpy.random.Generator``) and one uniform, so a seed
reproduces its decision exactly, at the cost of one integer per decision.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from bandit._config import parallel, serial

POLICY_UNIFORM = 0
POLICY_EGREEDY = 1
POLICY_SOFTMAX = 2
POLICY_SQUARECB = 3
POLICY_LINUCB = 4
POLICY_LINTS = 5

_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------- small pieces
@serial
def splitmix64(x: np.uint64) -> np.uint64:
    """One step of splitmix64: a well-mixed 64-bit hash of ``x``."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@serial
def seed_draws(seed: int, pool_rows: int) -> tuple[int, float]:
    """The pool offset and the uniform in [0, 1) that a decision seed stands for."""
    h1 = splitmix64(np.uint64(seed))
    h2 = splitmix64(h1)
    offset = int(h1 % np.uint64(pool_rows))
    u = float(h2 >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return offset, u


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
def mean_scores(X: np.ndarray, mu: np.ndarray, shared: np.ndarray, out: np.ndarray) -> None:
    """``out[a] = X[a] @ mu + shared[a]`` for every arm."""
    for a in range(X.shape[0]):
        s = shared[a]
        for j in range(X.shape[1]):
            s += X[a, j] * mu[j]
        out[a] = s


@serial
def argmax_masked(scores: np.ndarray, mask: np.ndarray) -> int:
    best = -1
    best_score = -np.inf
    for a in range(scores.shape[0]):
        if mask[a] and (best < 0 or scores[a] > best_score):
            best = a
            best_score = scores[a]
    return best


# --------------------------------------------------------------------------- selection rules
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
def ucb_distribution(
    GT: np.ndarray, m: np.ndarray, alpha: float, mask: np.ndarray, out: np.ndarray
) -> None:
    """LinUCB: all mass on the arm with the highest ``m + alpha * ||L^-1 x_a||``."""
    d, n_arms = GT.shape
    width = np.zeros(n_arms)
    for i in range(d):
        row = GT[i]
        for a in range(n_arms):
            width[a] += row[a] * row[a]
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
) -> int:
    """Monte-Carlo estimate of the Thompson-sampling action distribution.

    A draw ``theta = mu + scale * L^-T z`` scores the arms ``m + scale * GT^T z``, with ``z``
    the consecutive rows of ``pool`` starting at ``offset``; each draw's best allowed arm is
    counted. Draws come in blocks of ``n_min`` (``n_max`` is a multiple of it) and stop once a
    block adds no arm the earlier draws had not chosen (a first block that agrees on one arm
    stops at once), or at ``n_max``. Returns the number of draws used. The caller then picks the
    arm *from this distribution*, so the logged propensity is exact for the policy that ran.
    """
    d, n_arms = GT.shape
    # Four draws at a time: each loaded row of GT updates four score vectors, so the sweep
    # reads GT a quarter as often as one draw at a time. (Not BLAS: a BLAS call here, after a
    # parallel kernel had run, kept an OpenMP worker spinning for the process's life.)
    # In float32: a draw's scores only pick its best arm, and twice the lanes per vector
    # make the sweep ~40% faster (41 -> 25 us for 64 draws over 128 arms).
    G = np.empty((d, n_arms), dtype=np.float32)
    for i in range(d):
        for a in range(n_arms):
            G[i, a] = GT[i, a]
    mean = np.empty(n_arms, dtype=np.float32)
    for a in range(n_arms):
        mean[a] = m[a]
    scores = np.empty((4, n_arms), dtype=np.float32)
    for a in range(n_arms):
        out[a] = 0.0
    used = 0
    distinct = 0
    while used < n_max:
        before = max(distinct, 1)  # a first block that agrees on one arm is enough
        end = used + n_min
        for first in range(used, end, 4):
            s0, s1, s2, s3 = scores[0], scores[1], scores[2], scores[3]
            for a in range(n_arms):
                s0[a] = mean[a]
                s1[a] = mean[a]
                s2[a] = mean[a]
                s3[a] = mean[a]
            last = offset + end - 1  # a block that is not a multiple of 4 repeats its last draw
            z0, z1, z2, z3 = (
                pool[offset + first],
                pool[min(offset + first + 1, last)],
                pool[min(offset + first + 2, last)],
                pool[min(offset + first + 3, last)],
            )
            for i in range(d):
                c0 = np.float32(scale * z0[i])
                c1 = np.float32(scale * z1[i])
                c2 = np.float32(scale * z2[i])
                c3 = np.float32(scale * z3[i])
                row = G[i]
                for a in range(n_arms):
                    g = row[a]
                    s0[a] += c0 * g
                    s1[a] += c1 * g
                    s2[a] += c2 * g
                    s3[a] += c3 * g
            for j in range(min(4, end - first)):  # ...and counts it once
                best = argmax_masked(scores[j], mask)
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


# --------------------------------------------------------------------------- batch decide
def _decide(
    code,
    param,
    n_min,
    n_max,
    floor,
    rows,
    A,
    B,
    XT,
    attributes,
    W,
    contexts,
    mask,
    pool,
    seeds,
    dist_out,
    arms_out,
    mu_out,
    score_out,
):
    n = rows.shape[0]
    d, n_arms = XT.shape
    pool_rows = pool.shape[0] - n_max
    for i in prange(n):
        L = np.empty((d, d))
        GT = np.empty((d, n_arms))
        shared = np.empty(n_arms)
        m = np.empty(n_arms)
        offset, u = seed_draws(seeds[i], pool_rows)
        shared_row(W, attributes, contexts[i], shared)
        if code == POLICY_UNIFORM:
            greedy_family(code, param, shared, mask[i], dist_out[i])
            for j in range(d):
                mu_out[i, j] = 0.0  # the uniform policy never looks at the posterior
            for a in range(n_arms):
                m[a] = shared[a]
        else:
            factor_scores(A[rows[i]], B[rows[i]], XT, shared, L, GT, m, mu_out[i])
            if code == POLICY_LINTS:
                ts_distribution(GT, m, param, mask[i], pool, offset, n_min, n_max, dist_out[i])
            elif code == POLICY_LINUCB:
                ucb_distribution(GT, m, param, mask[i], dist_out[i])
            else:
                greedy_family(code, param, m, mask[i], dist_out[i])
        arm = apply_floor_and_pick(dist_out[i], mask[i], floor, u)
        arms_out[i] = arm
        score_out[i] = m[arm] - shared[arm]


decide_serial = serial(_decide)
decide_parallel = parallel(_decide)


def _mean_batch(rows, A, B, X, attributes, W, contexts, out):
    """Posterior-mean reward of every arm, shape (n, n_arms): the model's own prediction."""
    d = X.shape[1]
    for i in prange(rows.shape[0]):
        L = np.empty((d, d))
        Linv = np.empty((d, d))
        mu = np.empty(d)
        shared = np.empty(X.shape[0])
        shared_row(W, attributes, contexts[i], shared)
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


# --------------------------------------------------------------------------- learning
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
    for a in range(attributes.shape[0]):
        s = 0.0
        for r in range(p):
            s += attributes[a, r] * wc[r]
        out[a] = s


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
