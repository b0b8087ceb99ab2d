"""CF training cost: attune's events -> model path against a bare ``implicit`` fit.

One ``collab.fit`` run, the model ``attune train`` publishes, timed stage by stage
(``stages_s``): ``events_to_model_s`` is events -> matrix -> fit (the polars group-bys to the
CSR confidence matrix, then the ALS fit), and ``full_fit_s`` adds what the model carries
besides the factors (calibration, clusters, the cold-start classifier, the clusters' rewards,
the individual weight). ``bare_implicit_fit_s`` times
``implicit.cpu.als.AlternatingLeastSquares.fit`` alone on the same CSR matrix, in the same run,
with the same parameters and threads. ``ratio`` and ``full_ratio`` are attune's overhead over
the library.

    python benchmarks/bench_collab.py --json                 # 1,000,000 users x 48 arms
    python benchmarks/bench_collab.py --users 100000 --json  # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit parallelizes itself

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

import collab
from collab.matrix import build_matrix


def make_events(n_users: int, n_arms: int, per_user: int, seed: int) -> pl.DataFrame:
    """Synthetic feedback: users in 8 taste groups, Bernoulli rewards, string ids like the log."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    users = rng.integers(0, n_users, n)
    group = users % 8
    taste = rng.random((8, n_arms))
    arms = rng.integers(0, n_arms, n)
    reward = (rng.random(n) < taste[group, arms]).astype(np.float64)
    ids = pl.Series("user_id", users).cast(pl.String)
    return pl.DataFrame(
        {
            "user_id": "acme/u" + ids,
            "arm": arms.astype(np.int64),
            "reward": reward,
            "ts": np.arange(n, dtype=np.float64),
        }
    )


def _bare_fit(matrix: Any, args: argparse.Namespace) -> float:
    """Seconds of ``implicit``'s own ALS fit with the benchmark's parameters."""
    from implicit.cpu.als import AlternatingLeastSquares

    bare = AlternatingLeastSquares(
        factors=args.factors,
        iterations=args.iterations,
        regularization=0.05,
        num_threads=args.threads,
        random_state=args.seed,
    )
    t = time.perf_counter()
    bare.fit(matrix, show_progress=False)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--arms", type=int, default=48)
    p.add_argument("--events-per-user", type=int, default=10)
    p.add_argument("--factors", type=int, default=16)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    events = make_events(args.users, args.arms, args.events_per_user, args.seed)
    warnings.filterwarnings("ignore", message="OpenBLAS is configured")
    stages: dict[str, float] = {}
    mark = [time.perf_counter(), ""]

    def stage(name: str) -> None:
        now = time.perf_counter()
        if mark[1]:
            stages[mark[1]] = round(now - mark[0], 3)
        mark[0], mark[1] = now, name

    arm_ids = [f"arm-{i}" for i in range(args.arms)]
    data = build_matrix(events, args.arms)  # the same matrix, for the bare fits
    with threadpool_limits(1, "blas"):
        # Bare fits before and after attune's, averaged: the VM's speed drifts within minutes,
        # and whichever fit runs first would otherwise pay for it.
        bare_s = [_bare_fit(data.matrix, args)]
        t0 = time.perf_counter()
        collab.fit(
            events,
            factors=args.factors,
            iterations=args.iterations,
            regularization=0.05,
            n_clusters=8,
            arm_ids=arm_ids,
            num_threads=args.threads,
            progress=stage,
            random_state=args.seed,
        )
        full_s = time.perf_counter() - t0
        stage("")
        bare_s.append(_bare_fit(data.matrix, args))
    bare = sum(bare_s) / len(bare_s)
    to_model = stages["matrix"] + stages["factorize"]
    out = {
        "users": args.users,
        "arms": args.arms,
        "events": len(events),
        "nnz": data.matrix.nnz,
        "factors": args.factors,
        "iterations": args.iterations,
        "threads": args.threads,
        "stages_s": stages,
        "events_to_model_s": round(to_model, 3),
        "full_fit_s": round(full_s, 3),
        "bare_implicit_fit_s": round(bare, 3),
        "bare_runs_s": [round(b, 3) for b in bare_s],
        "ratio": round(to_model / bare, 3),
        "full_ratio": round(full_s / bare, 3),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
