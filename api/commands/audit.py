"""``attune audit``: per-group reward and regret with intervals; is any group served worse?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "audit",
        help="fairness audit of a simulation result or a decision log",
        description="Per-group mean reward (and, for simulations, regret) with bootstrap "
        "intervals, the largest gap between groups, and which groups are served "
        "worse than the best one.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", type=Path, help="an attune simulate output folder")
    src.add_argument(
        "--log", type=Path, help="a Parquet decision log or an embedded store (file or data folder)"
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        help="simulated policy to audit (repeatable; default: all but oracle)",
    )
    p.add_argument("--by", help="comma-separated group columns (default: all group_*/audit_*)")
    p.add_argument("--tenant", help="only this tenant's decisions (store logs)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="reward gaps up to this are not flagged (default 0.02)",
    )
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON output (default: audit.json in --sim)")


def run(args: argparse.Namespace) -> int:
    import polars as pl

    from simulations.audit import audit, format_audit
    from simulations.logs import atomic_write_text, load_log_frame

    by = [c.strip() for c in args.by.split(",") if c.strip()] if args.by else None
    common = {
        "by": by,
        "tolerance": args.tolerance,
        "n_bootstrap": args.bootstrap,
        "confidence": args.confidence,
        "random_state": args.seed,
    }
    audits = []
    if args.sim is not None:
        path = args.sim / "users.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"--sim: {path} not found (run attune simulate --out first)")
        users = pl.read_parquet(path)
        present = users["policy"].unique(maintain_order=True).to_list()
        policies = args.policy or [p for p in present if p != "oracle"]
        bad = [p for p in policies if p not in present]
        if bad:
            raise ValueError(
                f"--policy: {bad[0]!r} is not in {path}; present: {', '.join(present)}"
            )
        for policy in policies:
            audits += audit(users.filter(pl.col("policy") == policy), policy=policy, **common)
        out = args.out or args.sim / "audit.json"
    else:
        log = load_log_frame(args.log, tenant=args.tenant)
        audits = audit(log, reward="reward", regret=None, **common)
        out = args.out or args.log.with_name(f"{args.log.stem}.audit.json")
    print(format_audit(audits))
    flagged = sorted(
        {f"{a.policy}:{a.attribute}" if a.policy else a.attribute for a in audits if a.worse}
    )
    print(
        "some group is served worse: " + ", ".join(flagged)
        if flagged
        else "no group is served measurably worse"
    )
    atomic_write_text(out, json.dumps([a.to_dict() for a in audits], indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0
