"""Run compared policies on the same simulated stream (common random numbers).

Every round, each active user makes one request. The round's request features, decision seeds,
reward draws and feedback-observed flags come from one Generator seeded by ``(seed, round)``, and
every policy sees the same ones: differences between policies are the policies', not luck's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bandit import Catalog
from simulations.drivers import SIM_POLICIES, Driver, make_driver
from simulations.extras import require
from simulations.metrics import Tally, summarize
from simulations.scenario import Scenario, load_scenario
from simulations.world import World

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation produced.

    Attributes
    ----------
    rounds : polars.DataFrame
        One row per (policy, round): active users, observed feedback, mean and oracle reward,
        regret and cumulative regret.
    users : polars.DataFrame
        One row per (policy, user): persona, group attributes, turns, mean reward, regret,
        time to personalize, strategy diversity.
    summary : dict
        ``{"meta": {...}, "policies": {name: {...}}}`` (see ``metrics.summarize``).
    log : polars.DataFrame or None
        The decision log of ``log_policy`` in the OPE layout (see ``simulations.logs``).
    """

    rounds: pl.DataFrame
    users: pl.DataFrame
    summary: dict[str, Any]
    log: pl.DataFrame | None = field(default=None, repr=False)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``results.parquet``, ``users.parquet``, ``summary.json`` (and ``log.parquet``)."""
        from simulations.logs import atomic_write_parquet, atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(self.rounds, out / "results.parquet")
        atomic_write_parquet(self.users, out / "users.parquet")
        if self.log is not None:
            atomic_write_parquet(self.log, out / "log.parquet")
        atomic_write_text(out / "summary.json", json.dumps(self.summary, indent=2))
        return out


def simulate(
    scenario: Scenario | str,
    *,
    policies: Sequence[str] = SIM_POLICIES,
    users: int | None = None,
    rounds: int | None = None,
    seed: int = 0,
    catalog: Catalog | None = None,
    policy_params: Mapping[str, Mapping[str, Any]] | None = None,
    engine_params: Mapping[str, Any] | None = None,
    log_policy: str | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Simulate a scenario for each policy on one common stream.

    Parameters
    ----------
    scenario : Scenario or str
        A scenario or the name/path ``load_scenario`` accepts.
    policies : sequence of str
        Names from ``SIM_POLICIES``.
    users, rounds : int, optional
        Override the scenario's size.
    seed : int
        Seeds the world, the stream and every engine.
    policy_params : mapping, optional
        Per policy name, parameters for its engine policy (e.g. ``{"lints": {"scale": 0.2}}``).
    engine_params : mapping, optional
        Keyword arguments for every ``Engine`` (e.g. ``{"forgetting": 0.99}``).
    log_policy : str, optional
        Record this policy's decisions (with propensities) as an OPE log.
    progress : bool
        Show a tqdm progress bar over rounds (tqdm comes with the ``sim`` extra).

    Examples
    --------
    >>> result = simulate("default", policies=["uniform", "oracle"], users=50, rounds=5)
    >>> result.summary["policies"]["oracle"]["cumulative_regret"]
    0.0
    """
    started = time.perf_counter()
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sc = sc.with_size(users, rounds)
    policies = list(dict.fromkeys(policies))
    unknown = [p for p in policies if p not in SIM_POLICIES]
    if unknown or not policies:
        raise ValueError(
            f"unknown policy {unknown[0] if unknown else '(none)'!r}; "
            f"allowed: {', '.join(SIM_POLICIES)}"
        )
    if log_policy is not None and log_policy not in policies:
        raise ValueError(f"log_policy {log_policy!r} is not among the simulated policies")
    catalog = catalog or Catalog.default()
    world = World(sc, catalog, random_state=np.random.default_rng([seed, 0]))
    engine_params = {"context": world.spec, **dict(engine_params or {})}
    drivers = [
        make_driver(
            p, catalog, random_state=seed, policy_params=policy_params, engine_params=engine_params
        )
        for p in policies
    ]
    for d in drivers:
        d.start(world)
    tallies = {d.name: Tally(world.n_users, catalog.n_arms, sc.rounds) for d in drivers}
    log_rows: list[dict[str, np.ndarray]] = []
    steps: Iterable[int] = range(sc.rounds)
    if progress:
        tqdm = require("tqdm.auto").tqdm
        steps = tqdm(steps, desc=f"simulate {sc.name}", unit="round", leave=False)
    for t in steps:
        active = world.active(t)
        stream = _Stream(world, active, t, seed)
        for d in drivers:
            arms, props, dist = d.choose(active, stream.contexts, stream.probs, stream.seeds)
            expected = stream.probs[np.arange(len(active)), arms]
            obs, rewards = stream.feedback(expected)
            d.learn(active[obs], arms[obs], stream.contexts[obs], rewards[obs])
            tallies[d.name].add(t, active, arms, expected, stream.oracle, int(obs.sum()))
            if d.name == log_policy:
                log_rows.append(_log_block(t, active, stream, arms, props, dist, obs, rewards))
    rounds_df = pl.concat([tallies[d.name].rounds_frame(d.name) for d in drivers])
    users_df = pl.concat([tallies[d.name].users_frame(d.name, world) for d in drivers])
    meta = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "scenario": sc.name,
        "source": sc.source,
        "users": sc.users,
        "rounds": sc.rounds,
        "seed": seed,
        "catalog": catalog.name,
        "arms": catalog.n_arms,
        "policies": policies,
        "seconds": time.perf_counter() - started,
        "best_global": _best_global(drivers, catalog),
        "reward": "expected reward (true probability of the chosen arm)",
    }
    summary = {"meta": meta, "policies": summarize(rounds_df, users_df)}
    log = _log_frame(log_rows, world) if log_rows else None
    return SimulationResult(rounds_df, users_df, summary, log)


class _Stream:
    """One round's common random numbers and the truth for the active users."""

    def __init__(self, world: World, active: np.ndarray, t: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1, t])
        self.contexts = world.contexts(active, t, rng)
        self.seeds = rng.integers(0, 2**62, size=len(active), dtype=np.int64)
        self.u_reward = rng.random(len(active))
        self.noise = (
            rng.standard_normal(len(active)) if world.scenario.reward == "gaussian" else None
        )
        self.observed = rng.random(len(active)) < world.scenario.feedback_rate
        self.probs = world.probabilities(active, self.contexts, t)
        self.oracle = self.probs.max(axis=1)
        self.scenario = world.scenario

    def feedback(self, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(observed mask, drawn rewards in [0, 1]) for the chosen arms' probabilities."""
        if self.noise is None:
            rewards = (self.u_reward < expected).astype(np.float64)
        else:
            rewards = np.clip(expected + self.scenario.noise * self.noise, 0.0, 1.0)
        return self.observed, rewards


def _log_block(
    t: int,
    active: np.ndarray,
    stream: _Stream,
    arms: np.ndarray,
    props: np.ndarray,
    dist: np.ndarray | None,
    obs: np.ndarray,
    rewards: np.ndarray,
) -> dict[str, np.ndarray]:
    n_arms = stream.probs.shape[1]
    if dist is None:  # a deterministic policy: all mass on the chosen arm
        dist = np.zeros((len(arms), n_arms))
        dist[np.arange(len(arms)), arms] = 1.0
    return {
        "round": np.full(len(active), t),
        "user": active,
        "context": stream.contexts,
        "action": arms,
        "pscore": props,
        "action_dist": dist,
        "reward": rewards,
        "observed": obs,
        "expected_reward": stream.probs,
    }


def _log_frame(blocks: list[dict[str, np.ndarray]], world: World) -> pl.DataFrame:
    from simulations.logs import log_frame

    cat = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    return log_frame(
        user_id=[f"u{i}" for i in cat["user"].tolist()],
        ts=cat["round"].astype(float),
        context=cat["context"],
        action=cat["action"],
        reward=cat["reward"],
        pscore=cat["pscore"],
        action_dist=cat["action_dist"],
        extra={
            "observed": cat["observed"],
            "expected_reward": cat["expected_reward"],
            **{f"group_{g}": labels[cat["user"]] for g, labels in world.groups.items()},
        },
    )


def _best_global(drivers: list[Driver], catalog: Catalog) -> dict[str, Any] | None:
    for d in drivers:
        arm = getattr(d, "arm", None)
        if d.name == "best-global" and arm is not None:
            return {"arm": arm, "strategy_id": catalog.arm_ids[arm], "source": "hidden truth"}
    return None
