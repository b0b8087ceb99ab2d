"""Plain NumPy twins of every kernel in ``bandit._kernels``: short and obviously correct.

The kernel tests compare each kernel with its twin on small and edge-case inputs;
``NaiveLinTS`` assembles the twins into the default policy, which the core benchmark times
side by side with the engine.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bandit.features import featurize
from bandit.state import unpack

MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_draws(seed: int, pool_rows: int) -> tuple[int, float]:
    h1 = splitmix64(seed)
    h2 = splitmix64(h1)
    return h1 % pool_rows, (h2 >> 11) / 2.0**53


def posterior(ap: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, mu): Cholesky factor of the precision and the posterior mean."""
    A = unpack(ap.astype(np.float64), len(b))
    return np.linalg.cholesky(A), np.linalg.solve(A, b.astype(np.float64))


def greedy_family(code: int, param: float, m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    k = mask.sum()
    out = np.zeros_like(m)
    if code == 0:
        out[mask] = 1.0 / k
        return out
    best = np.flatnonzero(mask)[np.argmax(m[mask])]
    if code == 1:
        out[mask] = param / k
        out[best] += 1 - param
    elif code == 2:
        e = np.exp((m - m[best]) / param) * mask
        out = e / e.sum()
    else:
        out[mask] = 1.0 / (k + param * (m[best] - m[mask]))
        out[best] = 0.0
        out[best] = 1.0 - out.sum()
    return out


def factor_scores(ap, b, X, shared):
    """(L, GT, m, mu) as the kernel defines them, the obvious way."""
    L, mu = posterior(ap, b)
    return L, np.linalg.solve(L, X.T), shared + X @ mu, mu


def ucb_distribution(
    L: np.ndarray, X: np.ndarray, m: np.ndarray, alpha: float, mask: np.ndarray
) -> np.ndarray:
    cov = np.linalg.inv(L @ L.T)
    ucb = m + alpha * np.sqrt(np.einsum("ad,de,ae->a", X, cov, X))
    ucb[~mask] = -np.inf
    out = np.zeros_like(m)
    out[np.argmax(ucb)] = 1.0
    return out


def ts_distribution(
    L: np.ndarray,
    mu: np.ndarray,
    X: np.ndarray,
    shared: np.ndarray,
    scale: float,
    mask: np.ndarray,
    pool: np.ndarray,
    offset: int,
    block: int,
    n_max: int,
) -> tuple[np.ndarray, int]:
    """Draw theta from the posterior, score the arms, count the best allowed one."""
    counts = np.zeros(len(X))
    used = 0
    while used < n_max:
        before = max(int((counts > 0).sum()), 1)
        for _ in range(block):
            theta = mu + scale * np.linalg.solve(L.T, pool[offset + used])
            scores = np.where(mask, X @ theta + shared, -np.inf)
            counts[np.argmax(scores)] += 1
            used += 1
        if (counts > 0).sum() <= before:
            break
    return counts / used, used


def apply_floor_and_pick(
    dist: np.ndarray, mask: np.ndarray, floor: float, u: float
) -> tuple[np.ndarray, int]:
    d = np.where(mask, dist, 0.0)
    d = np.where(mask, floor / mask.sum() + (1 - floor) * d / d.sum(), 0.0)
    allowed = np.flatnonzero(mask)
    i = int(np.searchsorted(np.cumsum(d[allowed]), u, side="right"))
    return d, int(allowed[min(i, len(allowed) - 1)])


def explain_terms(
    centring: np.ndarray, mu: np.ndarray, W: np.ndarray, context: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, float]:
    """Per dimension ``[lift, q1, w1, q2, w2]`` (two largest contributions, stable order)."""
    n = centring.shape[1]
    lift = centring @ mu[:n]
    contrib = (centring @ W[:n]) * context
    top = np.argsort(-contrib, axis=1, kind="stable")[:, :2]
    weights = np.take_along_axis(contrib, top, axis=1)
    terms = np.column_stack([lift, top[:, 0], weights[:, 0], top[:, 1], weights[:, 1]])
    return terms, float(dist.max())


def shared_scores(W: np.ndarray, attributes: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    return contexts @ W.T @ attributes.T


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
    """Sequential updates on copies; ``user_scores[i]`` is used where ``known[i]``, else
    computed; ``steps`` (n,) are the shared model's step sizes; returns (A, B, n_obs, W)."""
    A, B, n_obs, W = A.astype(np.float64), B.astype(np.float64), n_obs.copy(), W.copy()
    d = X.shape[1]
    tril = np.tril_indices(d)
    for u, a, c, r, w, mine, k, lr in zip(
        rows, arms, contexts, rewards, weights, user_scores, known, steps, strict=True
    ):
        full = unpack(A[u], d)
        if not k:
            mine = X[a] @ np.linalg.solve(full, B[u])
        z = np.outer(attributes[a], c)
        y = r - float((W * z).sum())
        W += lr / (1 + (z**2).sum()) * (y - mine) * z
        full = gamma * full + (1 - gamma) * prior_prec[u] * np.eye(d) + w * np.outer(X[a], X[a])
        A[u] = full[tril]
        B[u] = gamma * B[u] + (1 - gamma) * prior_prec[u] * prior_mean[u] + w * y * X[a]
        n_obs[u] += 1
    return A, B, n_obs, W


def learn_pairwise(rows, x_diff, A, B, prior_mean, prior_prec, gamma):
    A, B = A.astype(np.float64), B.astype(np.float64)
    d = x_diff.shape[1]
    tril = np.tril_indices(d)
    for u, x in zip(rows, x_diff, strict=True):
        full = unpack(A[u], d)
        m = float(x @ np.linalg.solve(full, B[u]))
        s = 1 / (1 + np.exp(-m))
        h = max(s * (1 - s), 1e-3)
        full = gamma * full + (1 - gamma) * prior_prec[u] * np.eye(d) + h * np.outer(x, x)
        A[u] = full[tril]
        B[u] = gamma * B[u] + (1 - gamma) * prior_prec[u] * prior_mean[u] + (h * m + 1 - s) * x
    return A, B


def shared_step(config: dict, t: int) -> float:
    """``Engine.shared_steps`` for one update ``t``."""
    floor = min(config["shared_lr"], config["shared_lr_min"])
    return max(floor, config["shared_lr"] / (1 + t / config["shared_lr_tau"]))


class NaiveLinTS:
    """The default policy end to end in plain NumPy: full float64 matrices per user.

    Assumes zero prior means (as the benchmark's users have).
    """

    def __init__(
        self,
        X,
        attributes,
        W,
        A,
        B,
        ids,
        scale,
        block,
        n_max,
        floor,
        gamma,
        lr,
        prior_prec,
        seed=0,
        t=0,
    ):
        self.X, self.attributes, self.W = X, attributes, W.copy()
        d = X.shape[1]
        self.A = {u: unpack(A[r].astype(np.float64), d) for u, r in ids.items()}
        self.b = {u: B[r].astype(np.float64) for u, r in ids.items()}
        self.scale, self.block, self.n_max = scale, block, n_max
        # ``lr(t)``: the shared model's step size at its update ``t``
        self.floor, self.gamma, self.lr, self.prior_prec = floor, gamma, lr, prior_prec
        self.t = t
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_engine(cls, engine) -> NaiveLinTS:
        p = engine.policy.params
        return cls(
            engine.X,
            engine.catalog.attributes,
            engine.W,
            engine.users.A,
            engine.users.B,
            engine.users.ids,
            p["scale"],
            int(p["block"]),
            int(p["max_samples"]),
            engine.config.floor,
            engine.config.forgetting,
            partial(shared_step, engine.config.to_dict()),
            engine.users.prior_precision,
            t=engine.shared_updates,
        )

    def decide(self, user: str, message: str) -> tuple[int, np.ndarray]:
        c = featurize([message])[0]
        A, b = self.A[user], self.b[user]
        mu = np.linalg.solve(A, b)
        cov_chol = np.linalg.cholesky(np.linalg.inv(A))
        shared = self.attributes @ (self.W @ c)
        counts = np.zeros(len(self.X))
        used = 0
        while used < self.n_max:
            before = max(int((counts > 0).sum()), 1)
            z = self.rng.standard_normal((self.block, len(mu)))
            theta = mu + self.scale * z @ cov_chol.T
            np.add.at(counts, np.argmax(theta @ self.X.T + shared, axis=1), 1)
            used += self.block
            if (counts > 0).sum() <= before:
                break
        dist = self.floor / len(counts) + (1 - self.floor) * counts / used
        return int(self.rng.choice(len(dist), p=dist)), c

    def learn(self, user: str, arm: int, c: np.ndarray, reward: float) -> None:
        x = self.X[arm]
        mine = x @ np.linalg.solve(self.A[user], self.b[user])
        z = np.outer(self.attributes[arm], c)
        y = reward - float((self.W * z).sum())
        self.W += self.lr(self.t) / (1 + (z**2).sum()) * (y - mine) * z
        self.t += 1
        d = len(x)
        g = self.gamma
        self.A[user] = g * self.A[user] + (1 - g) * self.prior_prec * np.eye(d) + np.outer(x, x)
        self.b[user] = g * self.b[user] + y * x

    def bytes_per_user(self) -> float:
        some = next(iter(self.A))
        return float(self.A[some].nbytes + self.b[some].nbytes)
