"""The ``lints-cf`` variant: LinTS warm-started from collaborative filtering on logged history.

Before round 0, every initial user (arrival 0) has ``scenario.cf_history_rounds`` turns logged
by a uniform policy with the scenario's feedback sparsity; ``collab.fit`` trains on those
interactions and ``collab.warm_start`` sets the arm embeddings, the priors of the known users
and the cluster cold-start prior for users who arrive later. As in the service
(``streaming.models.ModelProcessor``), a user's requests add to their cluster evidence and
each of their first feedbacks re-picks their cluster prior (``collab.refine_cluster_priors``;
a known user's own CF prior stands for their cluster there).
Plain ``lints`` sees no history.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bandit import Engine
from simulations.drivers import EngineDriver

REFINE_MAX_FEEDBACK = 20  # refine_cluster_priors' default: later, a user's own evidence rules


def cf_available() -> str | None:
    """None when ``collab`` offers ``fit`` and ``warm_start``; else why ``lints-cf`` is off."""
    try:
        import collab
    except ImportError as exc:  # pragma: no cover - collab ships with attune
        return f"collab cannot be imported ({exc})"
    missing = [n for n in ("fit", "warm_start") if not hasattr(collab, n)]
    if missing:
        return f"collab.{missing[0]} does not exist yet"
    return None


def history(world: Any, seed: int) -> Any:
    """Uniform-logged interactions of the initial users, as a polars DataFrame
    ``[user_id: str, arm: int, reward: float, ts: float, context: list[float]]`` (only the
    observed turns; ``ts`` is negative: the history precedes round 0)."""
    import polars as pl

    sc = world.scenario
    rng = np.random.default_rng([seed, 2])
    users = np.flatnonzero(world.arrival == 0)
    frames = []
    for h in range(sc.cf_history_rounds):
        ctx = world.contexts(users, 0, rng)
        probs = world.probabilities(users, ctx, 0)
        arms = rng.integers(world.catalog.n_arms, size=len(users))
        p = probs[np.arange(len(users)), arms]
        if sc.reward == "gaussian":
            reward = np.clip(p + sc.noise * rng.standard_normal(len(users)), 0.0, 1.0)
        else:
            reward = (rng.random(len(users)) < p).astype(np.float64)
        seen = rng.random(len(users)) < sc.feedback_rate
        frames.append(
            pl.DataFrame(
                {
                    "user_id": [f"u{i}" for i in users[seen].tolist()],
                    "arm": arms[seen],
                    "reward": reward[seen],
                    "ts": np.full(int(seen.sum()), float(h - sc.cf_history_rounds)),
                    "context": pl.Series(ctx[seen].tolist(), dtype=pl.List(pl.Float64)),
                }
            )
        )
    return pl.concat(frames)


def cf_prepare(seed: int) -> Callable[[Engine, Any], None]:
    """The ``prepare`` hook of the lints-cf driver: fit CF on the history, warm-start."""

    def prepare(engine: Engine, world: Any) -> None:
        reason = cf_available()
        if reason is not None:
            raise RuntimeError(f"lints-cf is unavailable: {reason}")
        import collab

        interactions = history(world, seed)
        if interactions.height == 0:
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit runs its own threads and warns about BLAS threads it can't see limited
            warnings.filterwarnings("ignore", message=".*OpenBLAS.*", category=RuntimeWarning)
            # one ALS thread: multithreaded ALS sums in a varying order, and a simulation
            # must give the same numbers for the same seed
            model = collab.fit(
                interactions,
                factors=16,
                model="als",
                catalog=world.catalog,
                num_threads=1,
                random_state=seed,
            )
        collab.warm_start(engine, model, reset_known=True)

    return prepare


class WarmDriver(EngineDriver):
    """The ``lints-cf`` driver: the engine driver plus what the service does for a warm-started
    engine's users in their first feedbacks (see the module docstring)."""

    def choose(
        self, users: np.ndarray, contexts: np.ndarray, probs: np.ndarray, seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        out = super().choose(users, contexts, probs, seeds)
        early = self._early_users(users)
        if early.any():
            cold = self.engine.cold_start
            cold.observe_requests([f"u{i}" for i in users[early].tolist()], contexts[early])  # type: ignore[union-attr]
        return out

    def learn(
        self, users: np.ndarray, arms: np.ndarray, contexts: np.ndarray, rewards: np.ndarray
    ) -> None:
        super().learn(users, arms, contexts, rewards)
        early = self._early_users(users)
        if early.any():
            import collab

            ids = [f"u{i}" for i in users[early].tolist()]
            collab.refine_cluster_priors(self.engine, self.engine.cold_start, ids)  # type: ignore[arg-type]

    def _early_users(self, users: np.ndarray) -> np.ndarray:
        """Which of ``users`` are in their first feedbacks (known to the CF model or not)."""
        if self.engine.cold_start is None or not len(users):
            return np.zeros(len(users), dtype=bool)
        return self.engine.users.n_feedback[self._rows[users]] <= REFINE_MAX_FEEDBACK
