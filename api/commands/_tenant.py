"""``--settings`` and ``--tenant``: which catalog, store and topics a command works on.

A tenant that names a catalog of its own in the settings (``[tenants.<name>] catalog``) is
served by that catalog's lane (``Settings.for_tenant``); ``train``, ``worker``, ``simulate``,
``evaluate`` and ``export-log`` given ``--tenant`` use the same lane, so what they read,
fit and publish belongs to that tenant's catalog.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.settings import Settings


def add_tenant_options(p: argparse.ArgumentParser, *, tenant_help: str) -> None:
    p.add_argument(
        "--settings",
        type=Path,
        help="the settings TOML of attune serve ($ATTUNE_SETTINGS): catalogs, data_dir, bus",
    )
    p.add_argument("--tenant", help=tenant_help)


def tenant_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings of ``args.tenant``'s lane (file < ATTUNE_* < ``overrides``); an explicit
    ``catalog`` override cannot stand beside a tenant with a catalog of its own."""
    from api.settings import load_settings

    settings = load_settings(args.settings, os.environ, **overrides)
    tenant = getattr(args, "tenant", None)
    own = settings.tenant_catalogs.get(tenant) if tenant is not None else None
    if own is not None and overrides.get("catalog") not in (None, own):
        raise ValueError(
            f"--catalog {overrides['catalog']}: tenant {tenant!r} has its own catalog {own} "
            "in the settings; give one of them"
        )
    return settings.for_tenant(tenant)
