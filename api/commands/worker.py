"""``attune worker``: one member of the Kafka consumer group that applies events to user state."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.cli import CliError
from api.commands._tenant import add_tenant_options, tenant_settings


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="apply events from Kafka to user state (one consumer-group member)",
        description="Join the worker consumer group on Kafka, apply the events of the assigned "
        "partitions once each, and publish user state to the compacted changelog. "
        "Engine, feedback and reward settings come from the same settings file and "
        "ATTUNE_* variables as `attune serve`.",
    )
    p.add_argument(
        "--bus", default=None, help="kafka://host:port[?prefix=attune&partitions=8] ($ATTUNE_BUS)"
    )
    p.add_argument(
        "--worker-id",
        default=None,
        help="stable name of this worker; keep it across restarts (default: a new id per "
        "process, <host>-<pid>-<random>, so two workers on one host never share one)",
    )
    p.add_argument("--group", default=None, help="consumer group (default <prefix>.workers)")
    p.add_argument("--catalog", type=Path, help="strategy catalog TOML (default: the shipped one)")
    add_tenant_options(
        p,
        tenant_help="work for this tenant's catalog: a tenant with a catalog of its own "
        "(settings) has topics of its own, prefixed <prefix>-<catalog name>",
    )
    p.add_argument(
        "--max-batch", type=int, default=10_000, help="most events per transaction (default 10000)"
    )
    p.add_argument(
        "--session-timeout-ms",
        type=int,
        default=10_000,
        help="how long a vanished worker keeps its partitions (default 10000)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="interface for --metrics-port (default 127.0.0.1; 0.0.0.0 for a remote scraper)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run(args: argparse.Namespace) -> int:
    from bandit import Engine
    from streaming.kafka.bus import KafkaConfig, ensure_topics
    from streaming.kafka.model_feed import ModelFeed
    from streaming.kafka.retention import apply_retention
    from streaming.kafka.worker import KafkaWorker, WorkerIdTaken
    from streaming.models import ModelProcessor

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = tenant_settings(args, catalog=args.catalog, bus=args.bus)
    if not settings.bus.startswith("kafka://"):
        raise ValueError(f"--bus: the worker needs a kafka:// URL, got {settings.bus!r}")
    config = KafkaConfig.from_url(settings.bus)
    catalog = settings.load_catalog()
    ensure_topics(config)
    apply_retention(config, settings.retention)

    # CF models from the models topic: installed at batch boundaries, and a restored partition
    # gets back the version its record names (streaming/models.py). Read to the end first, so
    # that version is there when the first partitions are restored.
    feed = ModelFeed(config, poll_interval_s=settings.poll_interval_s).start()
    if not feed.wait_caught_up(120):
        raise TimeoutError(f"the models topic {config.models} was not read within 120 s")

    def make_processor(partition: int) -> ModelProcessor:
        # One engine per partition: its shared model sees only that partition's events, in
        # log order, which is what makes a restored partition exact (see kafka_worker).
        engine = Engine(catalog, settings.engine, random_state=0)
        return ModelProcessor(
            engine,
            settings.rewards,
            source=feed,
            wait_window_s=settings.wait_window_s,
            default_reward=settings.default_reward,
        )

    worker_id = args.worker_id or default_worker_id()
    with claim_worker_id(config.bootstrap, config.prefix, args.group, worker_id):
        if args.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr=args.metrics_host)
        worker = KafkaWorker(
            make_processor,
            config,
            worker_id=worker_id,
            group_id=args.group,
            max_batch=args.max_batch,
            session_timeout_ms=args.session_timeout_ms,
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"attune: worker {worker_id} consuming {config.events} in group {worker.group_id}",
            flush=True,
        )
        try:
            stats = worker.run(stop=stop)
        except WorkerIdTaken as exc:
            raise CliError(str(exc)) from None
        finally:
            feed.close()
    print(f"attune: worker {worker_id} stopped after {stats.events} events", flush=True)
    return 0


def default_worker_id() -> str:
    """A fresh id per process: the host name, the pid and a random suffix (a restarted worker
    without ``--worker-id`` joins as a new member; give stable ids to keep partitions)."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"{host or 'worker'}-{os.getpid()}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def claim_worker_id(
    bootstrap: str, prefix: str, group: str | None, worker_id: str
) -> Iterator[None]:
    """Hold a lock on this host for the worker id, or refuse to start: two workers with one id
    would fence each other (static membership, transactional id) for as long as both run."""
    folder = Path(tempfile.gettempdir()) / "attune-workers"
    folder.mkdir(exist_ok=True)
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{bootstrap}-{prefix}-{group}")
    path = folder / f"{name}-{worker_id}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise CliError(
                f"worker id {worker_id!r} is taken by a running worker on this host (pid "
                f"{fh.read().strip() or '?'}); give each worker its own --worker-id"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
