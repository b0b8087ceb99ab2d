"""How each compared policy picks arms in a simulation: one small contract, one registry.

Engine policies (``uniform``, ``egreedy``, ``linucb``, ``lints``, ``lints-cf``) run the real
engine through its batch path (``users.rows``, ``decide_arrays``, ``learn_arrays``); the two
reference points (``best-global``, ``oracle``) read the hidden truth and learn nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bandit import Catalog, Engine

SIM_POLICIES = ("uniform", "best-global", "egreedy", "linucb", "lints", "lints-cf", "oracle")


class Driver:
    """One compared policy. ``choose`` returns ``(arms, propensities, action_dist or None)``."""

    name = "driver"
    learns = False

    def start(self, world: Any) -> None:
        """Hook: called once, before round 0, with the world (hidden truth included)."""

    def choose(
        self, users: np.ndarray, contexts: np.ndarray, probs: np.ndarray, seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def learn(
        self, users: np.ndarray, arms: np.ndarray, contexts: np.ndarray, rewards: np.ndarray
    ) -> None:
        """Hook: learn from the observed rewards of this round."""


class EngineDriver(Driver):
    """A registered engine policy, driven through the engine's batch path."""

    learns = True

    def __init__(
        self,
        name: str,
        catalog: Catalog,
        *,
        policy: str,
        policy_params: Mapping[str, Any] | None = None,
        engine_params: Mapping[str, Any] | None = None,
        random_state: int = 0,
        prepare: Callable[[Engine, Any], None] | None = None,
    ) -> None:
        self.name = name
        self.learns = policy != "uniform"
        self.engine = Engine(
            catalog,
            policy=policy,
            policy_params=policy_params,
            random_state=random_state,
            **dict(engine_params or {}),
        )
        self._prepare = prepare
        self._rows = np.empty(0, dtype=np.int64)

    def start(self, world: Any) -> None:
        self._rows = np.full(world.n_users, -1, dtype=np.int64)
        if self._prepare is not None:
            self._prepare(self.engine, world)

    def rows(self, users: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """Engine rows of the users; a user's first turn creates their row (and applies the
        engine's cold-start prior to it, as the online ``decide`` path would)."""
        rows = self._rows[users]
        new = rows < 0
        if new.any():
            ids = [f"u{i}" for i in users[new].tolist()]
            known = np.array([uid in self.engine.users.ids for uid in ids])
            created = self.engine.users.rows(ids)
            cold = self.engine.cold_start
            if cold is not None and (~known).any():
                mean, precision = cold(contexts[new][~known])
                self.engine.users.set_prior(created[~known], mean, precision, reset=True)
            self._rows[users[new]] = created
            rows = self._rows[users]
        return rows

    def choose(
        self, users: np.ndarray, contexts: np.ndarray, probs: np.ndarray, seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        sel = self.engine.decide_arrays(self.rows(users, contexts), contexts, seeds=seeds)
        return sel.arms, sel.propensities, sel.action_dist

    def learn(
        self, users: np.ndarray, arms: np.ndarray, contexts: np.ndarray, rewards: np.ndarray
    ) -> None:
        if self.learns and len(users):
            self.engine.learn_arrays(self._rows[users], arms, contexts, rewards)


class BestGlobal(Driver):
    """One strategy for everyone: the arm with the highest population mean reward under the
    hidden truth (averaged over every user's requests of the first 5 rounds, preferences as
    at round 0). It never changes, so drift hurts it like any non-personalized product."""

    name = "best-global"

    def __init__(self) -> None:
        self.arm = -1

    def start(self, world: Any) -> None:
        users = np.arange(world.n_users)
        total = np.zeros(world.catalog.n_arms)
        for r in range(5):
            ctx = world.contexts(users, r, np.random.default_rng([7, r]))
            total += world.probabilities(users, ctx, 0).sum(axis=0)
        self.arm = int(np.argmax(total))

    def choose(
        self, users: np.ndarray, contexts: np.ndarray, probs: np.ndarray, seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return np.full(len(users), self.arm, dtype=np.int64), np.ones(len(users)), None


class Oracle(Driver):
    """Each user's best arm for this request under the hidden truth (regret 0 by definition)."""

    name = "oracle"

    def choose(
        self, users: np.ndarray, contexts: np.ndarray, probs: np.ndarray, seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return probs.argmax(axis=1), np.ones(len(users)), None


def make_driver(
    name: str,
    catalog: Catalog,
    *,
    random_state: int = 0,
    policy_params: Mapping[str, Mapping[str, Any]] | None = None,
    engine_params: Mapping[str, Any] | None = None,
) -> Driver:
    """Build the driver of a compared policy by its command-line name (see ``SIM_POLICIES``)."""
    params = dict((policy_params or {}).get(name, {}))
    if name == "best-global":
        return BestGlobal()
    if name == "oracle":
        return Oracle()
    if name in ("uniform", "egreedy", "linucb", "lints"):
        # Without CF, the arm features past the catalog's one-hots are zero: they change no
        # score, only the cost of every posterior sample, so these engines leave them out.
        compact = {"n_features": catalog.attributes.shape[1], **dict(engine_params or {})}
        return EngineDriver(
            name,
            catalog,
            policy=name,
            policy_params=params,
            engine_params=compact,
            random_state=random_state,
        )
    if name == "lints-cf":
        from simulations.cf import WarmDriver, cf_prepare

        return WarmDriver(
            name,
            catalog,
            policy="lints",
            policy_params=params,
            engine_params=engine_params,
            random_state=random_state,
            prepare=cf_prepare(random_state),
        )
    raise ValueError(f"unknown policy {name!r}; allowed: {', '.join(SIM_POLICIES)}")
