"""``attune keys``: create, list and revoke API keys in the embedded store, without a restart.

A running ``attune serve`` on the same store accepts a new key at its first use and stops
accepting a revoked one within seconds (``api.keys.KeyRing``). Keys are printed once, at
creation; the store keeps only their SHA-256. On Kafka, keys come from every replica's
settings instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys in the embedded store (no restart needed)",
        description="Manage the API keys kept in the embedded store's file. A new key is "
        "printed once; the store keeps its SHA-256. A running server picks up changes.",
    )
    p.add_argument("action", choices=("create", "list", "revoke"))
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tenant", help="the tenant the key belongs to")
    who.add_argument("--operator", action="store_true", help="an operator key (/metrics)")
    p.add_argument("--id", dest="key_id", help="revoke: the key's id as list shows it")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="data folder of attune serve (default ./attune-data, $ATTUNE_DATA_DIR)",
    )
    p.add_argument("--bus", help="sqlite:///path: the store in that file ($ATTUNE_BUS)")


def run(args: argparse.Namespace) -> int:
    from api.keys import OPERATOR, KeyStore, new_key
    from api.settings import load_settings

    settings = load_settings(env=os.environ, data_dir=args.data_dir, bus=args.bus)
    path = settings.store_path
    if path is None:
        raise ValueError(
            "keys: the store is on Kafka; set keys in every replica's settings "
            "([tenants.x] keys or ATTUNE_API_KEYS) instead"
        )
    if not path.is_file():
        raise ValueError(f"keys: no store at {path} (run attune serve once, or give --data-dir)")
    role = OPERATOR if args.operator else args.tenant
    if args.action != "list" and role is None:
        raise ValueError(f"keys {args.action}: give --tenant NAME or --operator")
    if args.tenant is not None:
        _check_tenant(args.tenant)
    store = KeyStore(path)
    try:
        if args.action == "create":
            key = new_key()
            key_id = store.add(role, key)
            print(key)
            print(f"created key {key_id} for {_name(role)}; it is shown only now", file=sys.stderr)
        elif args.action == "list":
            for key_id, tenant, created in store.list(role):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
                print(f"{key_id}  {_name(tenant)}  {when}")
        else:
            if not args.key_id:
                raise ValueError("keys revoke: give --id (see attune keys list)")
            n = store.revoke(role, args.key_id)
            if n == 0:
                raise LookupError(f"keys revoke: no key {args.key_id!r} of {_name(role)}")
            print(f"revoked {n} key(s) of {_name(role)}", file=sys.stderr)
    finally:
        store.close()
    return 0


def _name(role: str | None) -> str:
    from api.keys import OPERATOR

    return "operators" if role == OPERATOR else f"tenant {role!r}"


def _check_tenant(tenant: str) -> None:
    from api.settings import _TENANT

    if not _TENANT.match(tenant):
        raise ValueError(f"--tenant {tenant!r}: names must match {_TENANT.pattern}")
