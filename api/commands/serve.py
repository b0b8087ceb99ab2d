"""``attune serve``: the HTTP API, the embedded store and the learner in one process."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP API on the embedded store (SQLite, no services)",
        description="Run the attune HTTP API, an embedded SQLite store and the learner in one "
        "process. Settings: defaults < --settings file < ATTUNE_* variables < flags.",
    )
    p.add_argument("--host", help="interface to bind (default 127.0.0.1, $ATTUNE_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000, $ATTUNE_PORT)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder of the SQLite store (default ./attune-data, $ATTUNE_DATA_DIR)",
    )
    p.add_argument("--catalog", type=Path, help="strategy catalog TOML (default: the shipped one)")
    p.add_argument("--settings", type=Path, help="settings TOML file ($ATTUNE_SETTINGS)")
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--bus",
        default=None,
        help="kafka://host:port[?prefix=attune] to run as an API replica on Kafka, or "
        "sqlite:///path/to/store.sqlite for the embedded store in that file (default "
        "<data-dir>/attune.sqlite) ($ATTUNE_BUS)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    # Decisions run on the event loop while the learner and the store's flusher are threads:
    # with Python's default 5 ms GIL switch interval, a request can wait that long for the
    # GIL behind them; 1 ms bounds the wait without making the threads thrash.
    sys.setswitchinterval(0.001)

    from api.app import create_app
    from api.settings import load_settings

    settings = load_settings(
        args.settings,
        os.environ,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        catalog=args.catalog,
        bus=args.bus,
    )
    if settings.catalog is not None and not settings.catalog.is_file():
        raise FileNotFoundError(f"--catalog: no such file {settings.catalog}")
    app = create_app(settings)
    where = settings.store_path.resolve() if settings.store_path else settings.bus
    print(
        f"attune: serving on http://{settings.host}:{settings.port} (docs at /docs), store {where}",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=args.access_log,
        workers=1,
        # attune never reads the client address, so the per-request X-Forwarded-* parsing
        # layer is skipped; the Server header is dropped for the same reason (bytes per turn).
        proxy_headers=False,
        server_header=False,
    )
    return 0
