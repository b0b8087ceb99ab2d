"""Plain NumPy twins of every kernel in ``bandit._kernels``: short and obviously correct.

The kernel tests compare each kernel with its twin on small and edge-case inputs;
``NaiveLinTS`` assembles the twins into the default policy, which the core benchmark times
side by side with the engine.
"""

from __future__ import annotations

import numpy as np

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
    L: np.ndarray,
    X: np.ndarray,
    m: np.ndarray,
    alpha: float,
    mask: np.ndarray,
    attributes: np.ndarray,
    sv: np.ndarray,
) -> np.ndarray:
    cov = np.linalg.inv(L @ L.T)
    width2 = np.einsum("ad,de,ae->a", X, cov, X) + (attributes**2) @ (sv**2)
    ucb = m + alpha * np.sqrt(width2)
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
    attributes: np.ndarray,
    sv: np.ndarray,
    offset2: int,
) -> tuple[np.ndarray, int]:
    """Draw theta from the user's posterior and the shared terms (sd ``sv`` per attribute
    column), score the arms, count the best allowed one."""
    counts = np.zeros(len(X))
    used = 0
    p = len(sv)
    while used < n_max:
        before = max(int((counts > 0).sum()), 1)
        for _ in range(block):
            theta = mu + scale * np.linalg.solve(L.T, pool[offset + used])
            delta = sv * pool[offset2 + used, :p]
            scores = np.where(mask, X @ theta + shared + attributes @ delta, -np.inf)
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


def shared_terms(mean: np.ndarray, cov: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    """(g, v): each attribute column's term ``mean[s] @ c`` and its variance."""
    return mean @ c, np.einsum("i,sij,j->s", c, cov, c)


def shared_update(mean, cov, info, info_mean, attrs, c, target, noise):
    """One observation into copies of a tenant's shared posterior, block by block as the
    kernel's docstring defines it; returns (mean, cov, info, info_mean, prediction)."""
    mean, cov, info, info_mean = mean.copy(), cov.copy(), info.copy(), info_mean.copy()
    active = np.flatnonzero(attrs)
    z = {s: attrs[s] * c for s in active}
    v = {s: float(z[s] @ cov[s] @ z[s]) for s in active}
    part = {s: float(mean[s] @ z[s]) for s in active}
    pred = sum(part.values())
    total = noise + sum(v.values())
    for s in active:
        r = total - v[s]
        y = target - (pred - part[s])
        info[s] += np.outer(z[s], z[s]) / r
        info_mean[s] += z[s] * y / r
        k = cov[s] @ z[s] / total
        mean[s] = mean[s] + k * (target - pred)
        cov[s] = cov[s] - np.outer(k, cov[s] @ z[s])
    return mean, cov, info, info_mean, pred


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
    """Sequential updates on copies; ``user_scores[i]`` is used where ``known[i]``, else
    computed. Returns the user arrays ``(A, B, n_obs, resid_sum, x_sum)`` and the shared ones
    ``(mean, cov, info, info_mean, eb, updates)``."""
    A, B, n_obs = A.astype(np.float64), B.astype(np.float64), n_obs.copy()
    resid_sum, x_sum = resid_sum.astype(np.float64), x_sum.astype(np.float64)
    sm, sc, si, sh = (
        shared_mean.copy(),
        shared_cov.copy(),
        shared_info.copy(),
        shared_info_mean.copy(),
    )
    eb, updates = shared_eb.copy(), shared_updates.copy()
    d = X.shape[1]
    tril = np.tril_indices(d)
    for u, a, c, r, w, mine, k in zip(
        rows, arms, contexts, rewards, weights, user_scores, known, strict=True
    ):
        t, x = tenant[u], X[a]
        full = unpack(A[u], d)
        if not k:
            mine = x @ np.linalg.solve(full, B[u])
        noise = noise_var / w + noise_var * float(x @ x) / prior_prec[u]
        sm[t], sc[t], si[t], sh[t], pred = shared_update(
            sm[t], sc[t], si[t], sh[t], attributes[a], c, r - mine, noise
        )
        updates[t] += 1
        after = float(attributes[a] @ sm[t] @ c)  # the user learns what the updated one leaves
        full = gamma * full + (1 - gamma) * prior_prec[u] * np.eye(d) + w * np.outer(x, x)
        A[u] = full[tril]
        B[u] = gamma * B[u] + (1 - gamma) * prior_prec[u] * prior_mean[u] + w * (r - after) * x
        e = r - pred - float(x @ prior_mean[u])
        eb[t] = eb_keep * eb[t] + [2 * e * resid_sum[u], 2 * float(x @ x_sum[u])]
        resid_sum[u] += e
        x_sum[u] += x
        n_obs[u] += 1
    return (A, B, n_obs, resid_sum, x_sum), (sm, sc, si, sh, eb, updates)


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


class NaiveLinTS:
    """The default policy end to end in plain NumPy: full float64 matrices per user and the
    shared posterior of one tenant, updated block by block.

    Assumes zero prior means (as the benchmark's users have).
    """

    def __init__(self, X, attributes, spec, shared, A, B, ids, prior_prec, config, params, seed=0):
        self.X, self.attributes, self.spec = X, attributes, spec
        self.mean, self.cov, self.info, self.info_mean = (np.array(a) for a in shared)
        d = X.shape[1]
        self.A = {u: unpack(A[r].astype(np.float64), d) for u, r in ids.items()}
        self.b = {u: B[r].astype(np.float64) for u, r in ids.items()}
        self.prior_prec = {u: float(prior_prec[r]) for u, r in ids.items()}
        self.scale, self.block, self.n_max = params["scale"], params["block"], params["max_samples"]
        self.floor, self.gamma = config.floor, config.forgetting
        self.noise_var = config.noise_sd**2
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_engine(cls, engine) -> NaiveLinTS:
        sh, users = engine.shared, engine.users
        shared = (sh.mean[0], sh.cov[0], sh.info[0], sh.info_mean[0])
        params = {k: int(v) if k != "scale" else v for k, v in engine.policy.params.items()}
        return cls(
            engine.X,
            engine.catalog.attributes,
            engine.context,
            shared,
            users.A,
            users.B,
            users.ids,
            users.prior_prec,
            engine.config,
            params,
        )

    def decide(self, user: str, message: str) -> tuple[int, np.ndarray]:
        c = self.spec.featurize([message])[0]
        A, b = self.A[user], self.b[user]
        mu = np.linalg.solve(A, b)
        cov_chol = np.linalg.cholesky(np.linalg.inv(A))
        g, v = shared_terms(self.mean, self.cov, c)
        shared = self.attributes @ g
        shared_sd = self.scale * np.sqrt(np.maximum(v, 0.0) / self.noise_var)
        counts = np.zeros(len(self.X))
        used = 0
        while used < self.n_max:
            before = max(int((counts > 0).sum()), 1)
            z = self.rng.standard_normal((self.block, len(mu)))
            e = self.rng.standard_normal((self.block, len(g)))
            theta = mu + self.scale * z @ cov_chol.T
            scores = theta @ self.X.T + shared + (e * shared_sd) @ self.attributes.T
            np.add.at(counts, np.argmax(scores, axis=1), 1)
            used += self.block
            if (counts > 0).sum() <= before:
                break
        dist = self.floor / len(counts) + (1 - self.floor) * counts / used
        return int(self.rng.choice(len(dist), p=dist)), c

    def learn(self, user: str, arm: int, c: np.ndarray, reward: float) -> None:
        x = self.X[arm]
        mine = x @ np.linalg.solve(self.A[user], self.b[user])
        noise = self.noise_var * (1.0 + float(x @ x) / self.prior_prec[user])
        self.mean, self.cov, self.info, self.info_mean, pred = shared_update(
            self.mean,
            self.cov,
            self.info,
            self.info_mean,
            self.attributes[arm],
            c,
            reward - mine,
            noise,
        )
        y = reward - pred
        d = len(x)
        g, lam = self.gamma, self.prior_prec[user]
        self.A[user] = g * self.A[user] + (1 - g) * lam * np.eye(d) + np.outer(x, x)
        self.b[user] = g * self.b[user] + y * x

    def bytes_per_user(self) -> float:
        some = next(iter(self.A))
        return float(self.A[some].nbytes + self.b[some].nbytes)
