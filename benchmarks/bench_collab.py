"""CF training cost: attune's events -> model path against a bare ``implicit`` fit.

``events_to_model_s`` times ``collab.build_matrix`` (polars group-bys -> CSR confidence matrix)
plus the same ALS fit that ``collab.fit`` runs; ``bare_implicit_fit_s`` times
``implicit.cpu.als.AlternatingLeastSquares.fit`` alone on that very CSR matrix, in the same run,
with the same parameters and threads. The ratio is attune's overhead over the library.

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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit parallelizes itself

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from collab.fit import make_trainer
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
    fit = make_trainer("als")
    params = {
        "factors": args.factors,
        "iterations": args.iterations,
        "regularization": 0.05,
        "num_threads": args.threads,
        "seed": args.seed,
        "show_progress": False,
    }
    warnings.filterwarnings("ignore", message="OpenBLAS is configured")
    with threadpool_limits(1, "blas"):
        t0 = time.perf_counter()
        data = build_matrix(events, args.arms)
        t1 = time.perf_counter()
        fit(data.matrix, **params)
        t2 = time.perf_counter()
        from implicit.cpu.als import AlternatingLeastSquares

        bare = AlternatingLeastSquares(
            factors=args.factors,
            iterations=args.iterations,
            regularization=0.05,
            num_threads=args.threads,
            random_state=args.seed,
        )
        t3 = time.perf_counter()
        bare.fit(data.matrix, show_progress=False)
        t4 = time.perf_counter()
    out = {
        "users": args.users,
        "arms": args.arms,
        "events": len(events),
        "nnz": data.matrix.nnz,
        "factors": args.factors,
        "iterations": args.iterations,
        "threads": args.threads,
        "matrix_s": round(t1 - t0, 3),
        "events_to_model_s": round(t2 - t0, 3),
        "bare_implicit_fit_s": round(t4 - t3, 3),
        "ratio": round((t2 - t0) / (t4 - t3), 3),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
