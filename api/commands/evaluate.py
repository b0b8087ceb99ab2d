"""``attune evaluate``: off-policy estimates of an engine policy's value on a decision log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from api.commands._params import parse_params
from api.commands._tenant import add_tenant_options, tenant_settings


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="off-policy evaluation of a policy on a decision log",
        description="Estimate what an engine policy would have earned on logged decisions "
        "(IPS, SNIPS, DM, DR, switch-DR with bootstrap intervals). The policy is "
        "fitted on the log by prequential replay in time order.",
    )
    p.add_argument(
        "--log",
        type=Path,
        help="a Parquet log (attune export-log, attune simulate --log-policy) or an "
        "embedded store (attune.sqlite or its data folder); default: the store of the "
        "settings (the tenant's catalog's store, for a tenant with a catalog of its own)",
    )
    p.add_argument("--policy", required=True, help="engine policy: lints, linucb, egreedy, ...")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a policy parameter, e.g. alpha=0.5 (repeatable)",
    )
    p.add_argument(
        "--catalog", type=Path, help="the catalog the log was made with (default: the tenant's)"
    )
    add_tenant_options(
        p, tenant_help="only this tenant's decisions (store logs), replayed on its catalog"
    )
    p.add_argument(
        "--reward-model",
        choices=["engine", "ridge"],
        default="engine",
        help="DM/DR rewards: the replayed engine's posterior means (held fixed by "
        "the bootstrap) or a ridge model refitted per bootstrap sample",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap samples (default 200)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument(
        "--switch-tau", type=float, default=10.0, help="switch-DR's importance-weight threshold"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON output (default: next to the log)")


def run(args: argparse.Namespace) -> int:
    from bandit import POLICIES
    from simulations.logs import atomic_write_text, load_log
    from simulations.ope import evaluate
    from simulations.target import replay_target

    if args.policy not in POLICIES:
        raise ValueError(f"--policy: unknown {args.policy!r}; allowed: {', '.join(POLICIES)}")
    params = parse_params(args.param, "--param")
    settings = tenant_settings(args, catalog=args.catalog)
    args.log = args.log or settings.data_dir
    log = load_log(args.log, tenant=args.tenant)
    dist, q = replay_target(
        log, args.policy, params=params, random_state=args.seed, catalog=settings.load_catalog()
    )
    estimates = evaluate(
        log,
        dist,
        estimated_rewards=q if args.reward_model == "engine" else None,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        switch_tau=args.switch_tau,
        random_state=args.seed,
    )
    result = {
        "log": str(args.log),
        "rounds": log.n_rounds,
        "policy": args.policy,
        "params": params,
        "logged_mean_reward": float(log.reward.mean()),
        "reward_model": args.reward_model,
        "target": "prequential replay of the engine policy on the log, in time order",
        "estimates": {k: e.to_dict() for k, e in estimates.items()},
    }
    out = args.out or args.log.with_name(f"{args.log.stem}.evaluate-{args.policy}.json")
    atomic_write_text(out, json.dumps(result, indent=2))
    level = f"{args.confidence:.0%}"
    print(
        f"{args.policy} on {log.n_rounds} logged decisions (logged policy earned "
        f"{result['logged_mean_reward']:.4f}):"
    )
    print(f"{'estimator':10s} {'value':>8s}  {level} interval")
    for name, e in estimates.items():
        print(f"{name:10s} {e.value:8.4f}  [{e.lower:.4f}, {e.upper:.4f}]")
    print(f"wrote {out}", file=sys.stderr)
    return 0
