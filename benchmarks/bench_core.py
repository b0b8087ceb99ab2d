"""Core engine benchmark: decide latency, online and batch rounds per second, bytes per user.

Setup (the figures the core-engine issue asks for): a 48-arm catalog (the default catalog's
depth x format x length at one tone), 32 arm features (15 attribute columns plus 17 CF
embedding columns filled with fixed random values), and a trained model: 2,000 users with
hidden preferences, 100 rounds of feedback each, before anything is timed.

Every registered policy is measured through the public ``Engine`` API, and the default policy
(LinTS) is measured again as a plain NumPy implementation in the same run, for reference.
Last, the featurizer reads ~1 MB messages built to be slow, beside each one's 2,000-character
head (what it actually reads, and what a short message costs).

    python benchmarks/bench_core.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bandit import POLICIES, Catalog, ContextSpec, DecisionRequest, Engine, Feedback
from bandit.features import MAX_FEATURIZED_CHARS, featurize
from tests.bandit.naive import NaiveLinTS
from tests.faults.long_messages import LONG_MESSAGES

N_USERS = 2_000
TRAIN_ROUNDS = 100
MESSAGES = [
    "How do I reverse a linked list in Python?",
    "Explain gradient descent",
    "why is the sky blue",
    "Write a SQL query that counts orders per customer",
    "What is a monad?",
    "为什么天空是蓝色的？",
]


def bench_catalog() -> Catalog:
    raw = dict(Catalog.default().raw)
    dims = dict(raw["dimensions"])
    tone = dict(dims["tone"])
    tone["levels"] = {"neutral": tone["levels"]["neutral"]}
    dims["tone"] = tone
    raw["dimensions"] = dims
    raw["rules"] = []
    return Catalog.from_dict(raw, source="bench-48")


def trained_engine(
    policy: str, seed: int = 0, context: ContextSpec | None = None
) -> tuple[Engine, list[str], np.ndarray]:
    catalog = bench_catalog()
    assert catalog.n_arms == 48
    context = context or ContextSpec()
    engine = Engine(catalog, policy=policy, n_features=32, context=context, random_state=seed)
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.3, (catalog.n_arms, 32 - catalog.attributes.shape[1]))
    engine.set_arm_embeddings(emb)
    users = [f"user-{i}" for i in range(N_USERS)]
    rows = engine.users.rows(users)
    true_theta = rng.normal(0, 0.4, (N_USERS, 32))
    contexts = context.featurize(MESSAGES)
    for _ in range(TRAIN_ROUNDS):
        ctx = contexts[rng.integers(len(MESSAGES), size=N_USERS)]
        sel = engine.decide_arrays(rows, ctx)
        mean = np.einsum("ud,ud->u", true_theta, engine.X[sel.arms])
        reward = 1 / (1 + np.exp(-mean)) + rng.normal(0, 0.1, N_USERS)
        engine.learn_arrays(rows, sel.arms, ctx, np.clip(reward, 0, 1))
    return engine, users, contexts


def measure(
    engine: Engine,
    users: list[str],
    *,
    n_decide: int = 5_000,
    n_online: int = 5_000,
    n_batch: int = 100_000,
) -> dict[str, float]:
    rng = np.random.default_rng(1)
    requests = [
        DecisionRequest(users[i], MESSAGES[i % len(MESSAGES)])
        for i in rng.integers(len(users), size=n_decide)
    ]
    for r in requests[:200]:
        engine.decide([r])
    lat = np.empty(n_decide)
    for i, r in enumerate(requests):
        t0 = time.perf_counter()
        engine.decide([r])
        lat[i] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in requests[:n_online]:
        [d] = engine.decide([r])
        engine.learn([Feedback(r.user_id, d.arm, 0.5, d.context, user_score=d.user_score)])
    online = n_online / (time.perf_counter() - t0)
    rows = engine.users.rows([users[i] for i in rng.integers(len(users), size=n_batch)])
    ctx = engine.context.featurize(MESSAGES)[rng.integers(len(MESSAGES), size=n_batch)]
    rewards = rng.random(n_batch)
    batch_rates = []
    for chunk in (10_000, n_batch):  # warm the parallel path once, then time the full batch
        t0 = time.perf_counter()
        sel = engine.decide_arrays(rows[:chunk], ctx[:chunk])
        engine.learn_arrays(rows[:chunk], sel.arms, ctx[:chunk], rewards[:chunk])
        batch_rates.append(chunk / (time.perf_counter() - t0))
    return {
        "decide_p50_us": float(np.percentile(lat, 50) * 1e6),
        "decide_p99_us": float(np.percentile(lat, 99) * 1e6),
        "online_rounds_per_s": float(online),
        "batch_rounds_per_s": float(batch_rates[-1]),
        "bytes_per_user": float(engine.bytes_per_user()),
    }


def measure_naive(engine: Engine, users: list[str], n: int = 2_000) -> dict[str, float]:
    naive = NaiveLinTS.from_engine(engine)
    rng = np.random.default_rng(2)
    idx = rng.integers(len(users), size=n)
    lat = np.empty(n)
    for k, i in enumerate(idx):
        t0 = time.perf_counter()
        naive.decide(users[i], MESSAGES[k % len(MESSAGES)])
        lat[k] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, i in enumerate(idx):
        arm, ctx = naive.decide(users[i], MESSAGES[k % len(MESSAGES)])
        naive.learn(users[i], arm, ctx, 0.5)
    online = n / (time.perf_counter() - t0)
    return {
        "decide_p50_us": float(np.percentile(lat, 50) * 1e6),
        "decide_p99_us": float(np.percentile(lat, 99) * 1e6),
        "online_rounds_per_s": float(online),
        "batch_rounds_per_s": float(online),  # no batch path: one request at a time
        "bytes_per_user": float(naive.bytes_per_user()),
    }


def median_ms(message: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        featurize([message])
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def measure_featurize(repeats: int = 21) -> dict[str, dict[str, float]]:
    """Median milliseconds to featurize each ~1 MB message built to be slow, beside the same
    message cut to the head the featurizer reads (the reference: what a short message costs)."""
    featurize(["warm up"])
    return {
        kind: {
            "ms": median_ms(message, repeats),
            "head_ms": median_ms(message[:MAX_FEATURIZED_CHARS], repeats),
        }
        for kind, message in LONG_MESSAGES.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--overflow",
        type=int,
        default=ContextSpec().overflow,
        help="overflow columns of the context (0: the 16 message columns alone, strict mode: "
        "the context attune had before declared features)",
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    context = ContextSpec(overflow=args.overflow, strict=args.overflow == 0)
    out: dict[str, object] = {
        "setup": {
            "arms": 48,
            "features": 32,
            "context_columns": context.n_columns,
            "users": N_USERS,
            "train_rounds": TRAIN_ROUNDS,
            "default_policy": "lints",
        }
    }
    policies: dict[str, dict[str, float]] = {}
    for name in sorted(POLICIES):
        engine, users, _ = trained_engine(name, context=context)
        engine.warm()
        policies[name] = measure(
            engine,
            users,
            n_decide=5_000 // scale,
            n_online=5_000 // scale,
            n_batch=100_000 // scale,
        )
        if name == "lints":
            out["numpy_reference"] = measure_naive(engine, users, n=2_000 // scale)
    out.update(policies["lints"])
    out["policies"] = policies
    out["featurize_1mb"] = measure_featurize()
    targets = {
        "decide_p99_us": 50,
        "online_rounds_per_s": 20_000,
        "batch_rounds_per_s": 200_000,
        "bytes_per_user": 4096,
        "featurize_1mb_ms": 5,
    }
    out["targets"] = targets
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{'policy':10s} {'p50 us':>8s} {'p99 us':>8s} {'online/s':>10s} {'batch/s':>10s} "
        f"{'B/user':>8s}"
    )
    rows = [*policies.items(), ("numpy-ts", out["numpy_reference"])]
    for name, m in rows:
        m = dict(m)  # type: ignore[arg-type]
        print(
            f"{name:10s} {m['decide_p50_us']:8.1f} {m['decide_p99_us']:8.1f} "
            f"{m['online_rounds_per_s']:10.0f} {m['batch_rounds_per_s']:10.0f} "
            f"{m['bytes_per_user']:8.0f}"
        )
    print(f"\n{'1 MB message':12s} {'ms':>8s} {'head ms':>8s}")
    for kind, f in out["featurize_1mb"].items():  # type: ignore[attr-defined]
        print(f"{kind:12s} {f['ms']:8.2f} {f['head_ms']:8.2f}")


if __name__ == "__main__":
    main()
