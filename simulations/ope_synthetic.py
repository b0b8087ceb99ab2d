"""Synthetic logs with a known truth, for checking the OPE estimators.

Rewards are Bernoulli with a mean linear in the context (so the ridge reward model is well
specified); the logging policy is a softmax over a noisy copy of the true means, mixed with a
uniform floor, and the target policy a sharper softmax over another noisy copy. The true value
of the target policy is computed on a large independent sample of contexts.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bandit import check_random_state
from simulations.logs import LoggedData

_TRUTH_SAMPLE = 200_000
_TARGET_TEMPERATURE, _TARGET_FLOOR = 0.05, 0.05


def _world(n_arms: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arm coefficients and the two policies' score noise: fixed across replications."""
    world = np.random.default_rng(12345)
    beta = world.normal(0.0, 0.08, size=(n_arms, dim))
    beta[:, 0] = world.uniform(0.3, 0.7, size=n_arms)
    return (
        beta,
        world.normal(0.0, 0.1, size=(n_arms, dim)),
        world.normal(0.0, 0.03, size=(n_arms, dim)),
    )


def synthetic_log(
    n: int = 2000, n_arms: int = 10, dim: int = 5, *, floor: float = 0.1, random_state: Any = None
) -> tuple[LoggedData, np.ndarray, float]:
    """A log of ``n`` decisions, the target policy's action_dist on it, and its true value.

    The world (arm coefficients, both policies' score noise) is fixed; ``random_state`` only
    draws the contexts, the logged actions and the rewards, so seeds are replications.

    Returns
    -------
    log : LoggedData
    target : float array, shape (n, n_arms)
    truth : float
        The target policy's expected reward per decision.
    """
    beta, behaviour_noise, target_noise = _world(n_arms, dim)
    rng = check_random_state(random_state)

    def contexts(m: int, gen: np.random.Generator) -> np.ndarray:
        x = gen.normal(0.0, 1.0, size=(m, dim))
        x[:, 0] = 1.0
        return x

    def means(x: np.ndarray) -> np.ndarray:
        return np.clip(x @ beta.T, 0.01, 0.99)

    def policy(x: np.ndarray, noise: np.ndarray, temperature: float, eps: float) -> np.ndarray:
        s = (x @ (beta + noise).T) / temperature
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return (1 - eps) * e / e.sum(axis=1, keepdims=True) + eps / n_arms

    x = contexts(n, rng)
    behaviour = policy(x, behaviour_noise, 0.1, floor)
    cum = behaviour.cumsum(axis=1)
    action = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), n_arms - 1)
    reward = (rng.random(n) < means(x)[np.arange(n), action]).astype(np.float64)
    log = LoggedData(
        context=x,
        action=action,
        reward=reward,
        pscore=behaviour[np.arange(n), action],
        action_dist=behaviour,
    )
    target = policy(x, target_noise, _TARGET_TEMPERATURE, _TARGET_FLOOR)
    return log, target, _truth(n_arms, dim)


@functools.cache
def _truth(n_arms: int, dim: int) -> float:
    """The target policy's value, on a large sample of contexts (fixed world, so cached)."""
    big = np.random.default_rng(999).normal(0.0, 1.0, size=(_TRUTH_SAMPLE, dim))
    big[:, 0] = 1.0
    beta, _, target_noise = _world(n_arms, dim)
    means = np.clip(big @ beta.T, 0.01, 0.99)
    s = (big @ (beta + target_noise).T) / _TARGET_TEMPERATURE
    e = np.exp(s - s.max(axis=1, keepdims=True))
    pi = (1 - _TARGET_FLOOR) * e / e.sum(axis=1, keepdims=True) + _TARGET_FLOOR / n_arms
    return float((pi * means).sum(axis=1).mean())
