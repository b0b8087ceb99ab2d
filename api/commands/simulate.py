"""``attune simulate``: compare policies on a scenario; write results, summary, report, plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from api.commands._params import parse_params
from api.commands._tenant import add_tenant_options, tenant_settings


def add_parser(subparsers: Any) -> None:
    from simulations.drivers import SIM_POLICIES

    p = subparsers.add_parser(
        "simulate",
        help="simulate users and compare policies on a scenario",
        description="Run the engine's policies on one simulated stream (common random numbers) "
        "and write results.parquet, users.parquet, summary.json, report.md and PNG "
        "plots to --out.",
    )
    p.add_argument(
        "--scenario",
        default="default",
        help="a shipped scenario name (default, cold-start, drift, sparse, groups) "
        "or a scenario .toml file",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--users", type=int, help="number of users (default: the scenario's)")
    p.add_argument("--rounds", type=int, help="turns per user (default: the scenario's)")
    p.add_argument(
        "--policies",
        default=",".join(SIM_POLICIES),
        help=f"comma-separated, from {','.join(SIM_POLICIES)} (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds world, stream and engines")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="POLICY.KEY=VALUE",
        help="a policy parameter, e.g. lints.scale=0.2 (repeatable)",
    )
    p.add_argument("--log-policy", help="also write log.parquet: this policy's decision log")
    p.add_argument(
        "--catalog",
        type=Path,
        help="the strategy catalog TOML to simulate (default: the tenant's, else the shipped "
        "one); the scenario's preferences must name its levels",
    )
    add_tenant_options(p, tenant_help="simulate on this tenant's catalog (from --settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from simulations.cf import cf_available
    from simulations.drivers import SIM_POLICIES
    from simulations.extras import missing_extra
    from simulations.report import table, write_report
    from simulations.runner import simulate
    from simulations.scenario import load_scenario

    # before any work: the report's plots need matplotlib, the progress bar tqdm
    if reason := missing_extra("matplotlib"):
        raise ValueError(reason)
    if not args.no_progress and (reason := missing_extra("tqdm")):
        raise ValueError(f"{reason}, or pass --no-progress")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in SIM_POLICIES]
    if unknown or not policies:
        raise ValueError(
            f"--policies: unknown {unknown[0] if unknown else '(none)'!r}; "
            f"allowed: {', '.join(SIM_POLICIES)}"
        )
    if "lints-cf" in policies and (reason := cf_available()) is not None:
        raise ValueError(f"--policies: lints-cf is unavailable: {reason}")
    for name, value in (("--users", args.users), ("--rounds", args.rounds)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    params = _policy_params(args.param, policies)
    scenario = load_scenario(args.scenario)
    catalog = tenant_settings(args, catalog=args.catalog).load_catalog()
    result = simulate(
        scenario,
        catalog=catalog,
        policies=policies,
        users=args.users,
        rounds=args.rounds,
        seed=args.seed,
        policy_params=params,
        log_policy=args.log_policy,
        progress=not args.no_progress,
    )
    result.save(args.out)
    report = write_report(result, args.out)
    meta = result.summary["meta"]
    print(
        f"{meta['scenario']}: {meta['users']} users x {meta['rounds']} rounds, "
        f"{meta['seconds']:.1f} s"
    )
    print(table(result.summary["policies"]))
    print(f"wrote {report} (+ summary.json, results.parquet, plots) in {args.out}", file=sys.stderr)
    return 0


def _policy_params(items: list[str], policies: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_params(items, "--param").items():
        policy, _, name = key.partition(".")
        if not name or policy not in policies:
            raise ValueError(
                f"--param {key}: expected POLICY.KEY=VALUE with POLICY in {', '.join(policies)}"
            )
        out.setdefault(policy, {})[name] = value
    return out
