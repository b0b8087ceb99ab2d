"""Off-policy evaluation: IPS, SNIPS, DM, DR and switch-DR with bootstrap confidence intervals.

Every estimator is the mean of a per-decision term (SNIPS: a ratio of two means), so one
bootstrap draw is one vector of resampling counts applied to those terms. When the reward model
is fitted here (``reward_model="ridge"``), it is refitted on every bootstrap sample, so DM's and
DR's intervals include the model's own uncertainty; rewards given from outside (for example an
engine's ``expected_rewards``) are held fixed, and the intervals then ignore that uncertainty.

Notation: ``w_i = pi(a_i | x_i) / pscore_i``, ``q`` the estimated reward of every arm.

- IPS: ``mean(w r)``. Unbiased; high variance when ``w`` is large.
- SNIPS: ``sum(w r) / sum(w)``. Slightly biased, far less variance.
- DM: ``mean(sum_k pi_k q_k)``. Low variance, biased by model error.
- DR: ``DM + mean(w (r - q_a))``. Unbiased if either the propensities or the model are right.
- switch-DR: DR's correction only where ``w <= tau``; DM elsewhere (Wang et al., 2017).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bandit import check_random_state
from simulations.logs import LoggedData, from_dict

ESTIMATORS = ("ips", "snips", "dm", "dr", "switch-dr")
REWARD_MODELS = ("ridge",)


@dataclass(frozen=True)
class Estimate:
    """One estimator's policy value with its bootstrap percentile interval."""

    estimator: str
    value: float
    lower: float
    upper: float
    confidence: float
    n_bootstrap: int

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    data: LoggedData | Mapping[str, Any],
    action_dist: np.ndarray,
    *,
    estimated_rewards: np.ndarray | None = None,
    reward_model: str = "ridge",
    estimators: Sequence[str] = ESTIMATORS,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    switch_tau: float = 10.0,
    random_state: Any = None,
) -> dict[str, Estimate]:
    """Estimate the value of a target policy from a log.

    Parameters
    ----------
    data : LoggedData or obp-style dict
        The log (``context``, ``action``, ``reward``, ``pscore``).
    action_dist : float array, shape (n, n_arms)
        The target policy's distribution over arms at each logged context.
    estimated_rewards : float array, shape (n, n_arms), optional
        The reward model's prediction for DM/DR/switch-DR; held fixed by the bootstrap. When
        None, ``reward_model`` is fitted (and refitted per bootstrap sample).
    reward_model : {"ridge"}
        Per-arm ridge regression on the context, shrunk towards a pooled fit.
    estimators : sequence of str
        From ``ESTIMATORS``.
    n_bootstrap : int
    confidence : float in (0, 1)
    switch_tau : float
        switch-DR uses DR's correction where the importance weight is at most this.
    random_state : int, Generator or None

    Returns
    -------
    dict of str to Estimate, in the order of ``estimators``.

    Examples
    --------
    >>> from simulations.ope_synthetic import synthetic_log
    >>> log, target, truth = synthetic_log(n=500, random_state=0)
    >>> est = evaluate(log, target, n_bootstrap=50, random_state=0)
    >>> sorted(est) == sorted(ESTIMATORS)
    True
    """
    log = data if isinstance(data, LoggedData) else from_dict(data)
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(
            f"estimators: unknown {unknown[0] if unknown else '(none)'!r}; "
            f"allowed: {', '.join(ESTIMATORS)}"
        )
    if reward_model not in REWARD_MODELS:
        raise ValueError(
            f"reward_model: unknown {reward_model!r}; allowed: {', '.join(REWARD_MODELS)}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 10:
        raise ValueError(f"n_bootstrap must be >= 10, got {n_bootstrap}")
    if not switch_tau > 0:
        raise ValueError(f"switch_tau must be > 0, got {switch_tau}")
    pi = _check_dist(action_dist, log)
    q_fixed = None if estimated_rewards is None else _check_q(estimated_rewards, pi.shape)
    rng = check_random_state(random_state)
    n = log.n_rounds
    needs_q = any(e in ("dm", "dr", "switch-dr") for e in estimators)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(np.float64)
    point = {
        k: float(v[0])
        for k, v in _values(log, pi, np.ones((1, n)), q_fixed, needs_q, switch_tau).items()
    }
    # Blocks of bootstrap samples keep the (block, n, n_arms) reward-model array small.
    block = max(1, int(2e7 // (n * pi.shape[1])))
    parts = [
        _values(log, pi, counts[i : i + block], q_fixed, needs_q, switch_tau)
        for i in range(0, n_bootstrap, block)
    ]
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    out = {}
    for name in estimators:
        draws = np.concatenate([p[name] for p in parts])
        lo, hi = np.percentile(draws, [lo_q, hi_q])
        out[name] = Estimate(name, point[name], float(lo), float(hi), confidence, n_bootstrap)
    return out


def _values(
    log: LoggedData,
    pi: np.ndarray,
    counts: np.ndarray,
    q_fixed: np.ndarray | None,
    needs_q: bool,
    tau: float,
) -> dict[str, np.ndarray]:
    """Every estimator on each (re)sample, given as resampling counts of shape (b, n)."""
    n = counts.sum(axis=1)
    rows = np.arange(log.n_rounds)
    w = pi[rows, log.action] / log.pscore
    wr = w * log.reward
    out = {"ips": counts @ wr / n, "snips": (counts @ wr) / (counts @ w)}
    if not needs_q:
        return out
    if q_fixed is not None:
        dm_terms = (pi * q_fixed).sum(axis=1)
        correction = w * (log.reward - q_fixed[rows, log.action])
        out["dm"] = counts @ dm_terms / n
        out["dr"] = out["dm"] + counts @ correction / n
        out["switch-dr"] = out["dm"] + counts @ np.where(w <= tau, correction, 0.0) / n
        return out
    q = _ridge_model(log, counts, pi.shape[1])  # (b, n_arms, n)
    dm_terms = np.einsum("bkn,nk->bn", q, pi)
    correction = w * (log.reward - q[:, log.action, rows])
    out["dm"] = (counts * dm_terms).sum(axis=1) / n
    out["dr"] = out["dm"] + (counts * correction).sum(axis=1) / n
    out["switch-dr"] = out["dm"] + (counts * np.where(w <= tau, correction, 0.0)).sum(axis=1) / n
    return out


def fit_ridge(log: LoggedData, *, lam: float = 1.0, n_arms: int | None = None) -> np.ndarray:
    """Estimated reward of every arm at every logged context, shape (n, n_arms).

    A pooled ridge fit on all rows, then one ridge fit per arm on that fit's residuals, so an
    arm with few logged rows falls back to the pooled prediction instead of to zero.
    """
    q = _ridge_model(log, np.ones((1, log.n_rounds)), n_arms or log.n_arms, lam)
    return q[0].T


def _ridge_model(log: LoggedData, counts: np.ndarray, n_arms: int, lam: float = 1.0) -> np.ndarray:
    """``fit_ridge`` once per resample (row weights ``counts``, shape (b, n)): (b, n_arms, n)."""
    x = np.column_stack([np.ones(log.n_rounds), log.context])
    p = x.shape[1]
    outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), p * p)
    eye = lam * np.eye(p)
    pooled = _ridge(outer, x, log.reward[None, :], counts, eye)  # (b, p)
    base = pooled @ x.T  # (b, n)
    resid = log.reward[None, :] - base
    betas = np.zeros((len(counts), n_arms, p))
    for arm in range(n_arms):
        sel = log.action == arm
        if sel.any():
            betas[:, arm] = _ridge(outer[sel], x[sel], resid[:, sel], counts[:, sel], eye)
    q = base[:, None, :] + betas @ x.T
    return np.clip(q, log.reward.min(), log.reward.max(), out=q)


def _ridge(
    outer: np.ndarray, x: np.ndarray, y: np.ndarray, c: np.ndarray, eye: np.ndarray
) -> np.ndarray:
    """Weighted ridge coefficients per resample: outer (m, p*p) = rows' x x^T, x (m, p),
    y and c (b, m) -> (b, p)."""
    p = x.shape[1]
    gram = (c @ outer).reshape(len(c), p, p) + eye
    rhs = (c * y) @ x
    return np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]


def _check_dist(action_dist: np.ndarray, log: LoggedData) -> np.ndarray:
    pi = np.asarray(action_dist, dtype=np.float64)
    if pi.ndim == 3:  # obp's (n, n_actions, len_list)
        pi = pi[:, :, 0]
    if pi.ndim != 2 or len(pi) != log.n_rounds or pi.shape[1] <= log.action.max():
        raise ValueError(
            f"action_dist: expected shape ({log.n_rounds}, n_arms > max action), got {pi.shape}"
        )
    if (pi < -1e-12).any() or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("action_dist: every row must be a probability distribution")
    return pi


def _check_q(q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.shape != shape:
        raise ValueError(f"estimated_rewards: expected shape {shape}, got {q.shape}")
    if not np.isfinite(q).all():
        raise ValueError("estimated_rewards: every value must be finite")
    return q
