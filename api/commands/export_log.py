"""``attune export-log``: the embedded store's decision log as Parquet, in the OPE layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from api.commands._tenant import add_tenant_options, tenant_settings


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-log",
        help="write the decision log (context, action, reward, pscore, action_dist) as Parquet",
        description="Export logged decisions with their rewards from the embedded store, in "
        "the layout OPE tools expect (obp's names), for attune evaluate or a "
        "notebook.",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the store: data folder of attune serve or its attune.sqlite (default: the "
        "settings', else ./attune-data)",
    )
    p.add_argument("--out", type=Path, required=True, help="output .parquet file")
    add_tenant_options(
        p,
        tenant_help="only this tenant's decisions, from its catalog's store when it has a "
        "catalog of its own (settings)",
    )


def run(args: argparse.Namespace) -> int:
    from simulations.logs import frame_to_logged, store_frame, write_log

    if args.out.suffix != ".parquet":
        raise ValueError(f"--out: expected a .parquet file, got {args.out}")
    if args.data_dir is None or args.data_dir.is_dir():
        args.data_dir = tenant_settings(args, data_dir=args.data_dir).data_dir
    df = store_frame(args.data_dir, tenant=args.tenant)
    frame_to_logged(df, where=str(args.data_dir))  # refuse to write a log OPE cannot read
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_log(df, args.out)
    print(f"wrote {df.height} decisions to {args.out}", file=sys.stderr)
    return 0
