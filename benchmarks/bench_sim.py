"""Simulation benchmark: simulated rounds per second of the batch path, LinTS, 48 arms.

Setup (the figures the simulations issue asks for): the ``default`` scenario's personas on a
48-arm catalog (the default catalog's depth x format x length at one tone, as in
``bench_core.py``), 100,000 users x 20 rounds, LinTS only. A "round" is one user's turn: the
hidden truth for every arm, the engine's decision (``decide_arrays``), the reward draw, the
engine's update (``learn_arrays``) and the metrics. Kernels are compiled before timing.

For reference, the same simulation runs in the same process as a plain NumPy LinTS (batched
over users with ``numpy.linalg``, one posterior sample per decision) on a smaller slice.

    python benchmarks/bench_sim.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bandit import Catalog, Engine
from benchmarks.bench_core import bench_catalog
from simulations import World, load_scenario, simulate
from simulations.scenario import Scenario

USERS, ROUNDS = 100_000, 20
REF_USERS, REF_ROUNDS = 5_000, 5


def bench_scenario(catalog: Catalog, users: int, rounds: int) -> Scenario:
    """The default scenario with preferences restricted to the levels the catalog has."""
    sc = load_scenario("default")
    levels = {d.name: set(d.level_names) for d in catalog.dimensions}

    def keep(prefs: Any) -> dict[str, dict[str, float]]:
        return {
            dim: {lv: v for lv, v in lv_map.items() if lv in levels.get(dim, ())}
            for dim, lv_map in prefs.items()
            if dim in levels
        }

    personas = tuple(
        replace(
            p,
            prefer=keep(p.prefer),
            interactions=tuple(i for i in p.interactions if i.level in levels.get(i.dim, ())),
        )
        for p in sc.personas
    )
    return replace(sc, personas=personas, users=users, rounds=rounds)


def measure_engine(catalog: Catalog, users: int, rounds: int) -> dict[str, float]:
    Engine(catalog, policy="lints").warm()
    sc = bench_scenario(catalog, users, rounds)
    simulate(sc, policies=["lints"], users=2_000, rounds=2, catalog=catalog)  # warm-up
    t0 = time.perf_counter()
    result = simulate(sc, policies=["lints"], catalog=catalog, seed=1)
    seconds = time.perf_counter() - t0
    m = result.summary["policies"]["lints"]
    return {
        "batch_rounds_per_s": users * rounds / seconds,
        "seconds": seconds,
        "mean_reward": m["mean_reward"],
        "oracle_reward": m["oracle_reward"],
    }


def measure_numpy(
    catalog: Catalog, users: int, rounds: int, scale: float = 0.3, floor: float = 0.05
) -> dict[str, float]:
    """Plain NumPy twin: per-user Gaussian posteriors over the attribute vectors, batched."""
    world = World(
        bench_scenario(catalog, users, rounds), catalog, random_state=np.random.default_rng([1, 0])
    )
    x = catalog.attributes
    d, k = x.shape[1], catalog.n_arms
    a = np.repeat(np.eye(d)[None], users, axis=0)
    b = np.zeros((users, d))
    ids = np.arange(users)
    total = 0.0
    t0 = time.perf_counter()
    for t in range(rounds):
        rng = np.random.default_rng([1, 1, t])
        ctx = world.contexts(ids, t, rng)
        probs = world.probabilities(ids, ctx, t)
        cov = np.linalg.inv(a)
        mu = np.einsum("uij,uj->ui", cov, b)
        theta = mu + scale * np.einsum(
            "uij,uj->ui", np.linalg.cholesky(cov), rng.standard_normal((users, d))
        )
        arms = np.argmax(theta @ x.T, axis=1)
        explore = rng.random(users) < floor
        arms[explore] = rng.integers(k, size=int(explore.sum()))
        p = probs[ids, arms]
        reward = (rng.random(users) < p).astype(float)
        xa = x[arms]
        a += xa[:, :, None] * xa[:, None, :]
        b += reward[:, None] * xa
        total += p.mean()
    seconds = time.perf_counter() - t0
    return {
        "batch_rounds_per_s": users * rounds / seconds,
        "seconds": seconds,
        "mean_reward": total / rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="10x fewer users (smoke run)")
    args = parser.parse_args()
    users = USERS // 10 if args.quick else USERS
    catalog = bench_catalog()
    assert catalog.n_arms == 48
    engine = measure_engine(catalog, users, ROUNDS)
    ref = measure_numpy(catalog, REF_USERS, REF_ROUNDS)
    out = {
        "setup": {
            "arms": catalog.n_arms,
            "users": users,
            "rounds": ROUNDS,
            "policy": "lints",
            "scenario": "default (48-arm levels)",
            "numpy_reference_slice": {"users": REF_USERS, "rounds": REF_ROUNDS},
        },
        "batch_rounds_per_s": engine["batch_rounds_per_s"],
        "seconds": engine["seconds"],
        "mean_reward": engine["mean_reward"],
        "oracle_reward": engine["oracle_reward"],
        "numpy_reference": ref,
        "targets": {"batch_rounds_per_s": 200_000},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"attune lints  {engine['batch_rounds_per_s']:12,.0f} rounds/s  "
        f"({users:,} users x {ROUNDS} rounds in {engine['seconds']:.1f} s)"
    )
    print(
        f"numpy lints   {ref['batch_rounds_per_s']:12,.0f} rounds/s  "
        f"({REF_USERS:,} users x {REF_ROUNDS} rounds in {ref['seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
