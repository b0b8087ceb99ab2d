"""``attune train``: events -> polars -> implicit ALS (or BPR) -> a published, versioned CF model.

Reads the event log (the embedded store of ``attune serve``, a Kafka events topic, or a
Parquet file of interactions), writes the interactions it trained on as Parquet for data
scientists, fits ``collab.fit`` and publishes the model: ``<data-dir>/models/cf-<version>.npz``
in the embedded mode (workers and the service pick it up with ``collab.ModelWatcher``), or the
models topic with ``--bus kafka://...``. Logged strategies are read against the catalog the
service uses (``--catalog``, or the settings' ``[server] catalog``), which the model records: a
process serving another catalog refuses it. Users deleted through the profile API are erased from
the embedded log, so they are not in the next model; a Kafka topic cannot be rewritten, so
training from it drops every event of a user that came before their delete event.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from bandit import Catalog

STAGES = ("read", "matrix", "factorize", "calibrate", "cluster", "publish")
SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "arm": pl.Int64(),
    "reward": pl.Float64(),
    "ts": pl.Float64(),
    "context": pl.List(pl.Float64()),
}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="fit the collaborative-filtering model and publish it",
        description="Fit implicit ALS (or BPR) on the feedback log and publish a versioned CF "
        "model that workers and the service load without a restart.",
    )
    src = p.add_argument_group("input")
    src.add_argument(
        "--data-dir",
        type=Path,
        help="data folder of attune serve (store + models/); default ./attune-data, "
        "$ATTUNE_DATA_DIR",
    )
    src.add_argument(
        "--bus",
        help="kafka://host:port?prefix=attune: read the events topic and publish to the models "
        "topic instead of the data folder; sqlite:///path: read the store in that file (as "
        "attune serve --bus), publish to <data-dir>/models ($ATTUNE_BUS)",
    )
    src.add_argument(
        "--events",
        type=Path,
        help="a Parquet file of interactions (user_id, "
        "arm, reward, ts[, context, weight]) instead of the log",
    )
    src.add_argument(
        "--tenant",
        help="only this tenant's events; a tenant with a catalog of its own (settings) trains "
        "on its catalog's store or topics and publishes there",
    )
    p.add_argument(
        "--catalog",
        type=Path,
        help="the strategy catalog TOML the logged decisions were made with (default: the one "
        "--settings or $ATTUNE_CATALOG names, else the shipped one); the model records it, and "
        "serving processes on another catalog refuse the model",
    )
    p.add_argument(
        "--settings",
        type=Path,
        help="the settings TOML of attune serve ($ATTUNE_SETTINGS): its catalog, data_dir and bus",
    )
    p.add_argument(
        "--parquet-out",
        type=Path,
        help="where to write the interactions "
        "(default <data-dir>/exports/interactions-<version>.parquet)",
    )
    p.add_argument("--model", choices=("als", "bpr"), default="als")
    p.add_argument("--factors", type=int, default=16)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--regularization", type=float, default=0.05)
    p.add_argument(
        "--weighting",
        choices=("linear", "log", "binary"),
        default="linear",
        help="how summed reward signals become confidences",
    )
    p.add_argument("--alpha", type=float, default=10.0, help="confidence per unit of signal")
    p.add_argument("--clusters", type=int, default=8, help="k-means groups (adapter ids)")
    p.add_argument("--min-users", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import collab
    from api.commands._tenant import tenant_settings
    from collab.model import describe_catalog

    # The same settings as attune serve (file < ATTUNE_* < flags), so train reads the store and
    # the catalog that serve uses for the tenant.
    settings = tenant_settings(args, data_dir=args.data_dir, catalog=args.catalog)
    args.data_dir = settings.data_dir
    if args.events is None:  # a file of interactions needs no bus
        args.bus = args.bus or settings.bus or None
    if args.events is not None and args.bus is not None:
        raise ValueError("--events and --bus: give one source of events, not both")
    catalog = settings.load_catalog()
    _kafka(args)  # a --bus of any other kind fails here, before any work
    bar = _progress_bar(args.no_progress)

    def stage(name: str) -> None:
        if bar.n < len(STAGES) and name in STAGES:
            bar.set_postfix_str(name)
            bar.update(STAGES.index(name) - bar.n)

    try:
        stage("read")
        df = read_interactions(args, catalog)
        model = collab.fit(
            df,
            factors=args.factors,
            model=args.model,
            iterations=args.iterations,
            regularization=args.regularization,
            n_clusters=args.clusters,
            catalog=catalog,
            weighting=collab.Weighting(scheme=args.weighting, alpha=args.alpha),
            num_threads=args.threads,
            min_users=args.min_users,
            progress=stage,
            random_state=args.seed,
        )
        out = (
            args.parquet_out or args.data_dir / "exports" / f"interactions-{model.version}.parquet"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(out)
        stage("publish")
        where = publish(model, args)
        bar.update(len(STAGES) - bar.n)
    finally:
        bar.close()
    print(
        f"model v{model.version} on catalog {describe_catalog(catalog.identity())}: "
        f"{model.n_users} users, {len(model.arm_ids)} arms, "
        f"{model.n_clusters} clusters, {model.meta['n_interactions']} interactions -> {where}; "
        f"interactions in {out}",
        file=sys.stderr,
    )
    return 0


def _progress_bar(off: bool) -> Any:
    """tqdm's bar over the stages, or a silent stand-in with ``off`` (tqdm is optional)."""
    if off:
        return _NoBar()
    from simulations.extras import missing_extra

    if reason := missing_extra("tqdm"):
        raise ValueError(f"{reason}, or pass --no-progress")
    from tqdm import tqdm

    return tqdm(total=len(STAGES), desc="attune train", unit="stage", file=sys.stderr)


class _NoBar:
    """The part of tqdm's bar ``run`` uses, doing nothing."""

    n = 0

    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        pass


def read_interactions(args: argparse.Namespace, catalog: Catalog) -> pl.DataFrame:
    """The interactions table from the chosen source (see the module docstring); arms are
    indices into ``catalog``."""
    if args.events is not None:
        if not args.events.is_file():
            raise ValueError(f"--events: no such file {args.events}")
        df = pl.read_parquet(args.events)
        return (
            df.filter(pl.col("user_id").str.starts_with(f"{args.tenant}/")) if args.tenant else df
        )
    from streaming.join import decision_log

    if _kafka(args):
        from streaming.kafka.bus import KafkaConfig
        from streaming.kafka.reader import read_events

        events = read_events(KafkaConfig.from_url(args.bus))
        return _rows_frame(decision_log(events, tenant=args.tenant), catalog)
    from streaming.bus import sqlite_path

    if args.bus is not None:
        path = sqlite_path(args.bus)
        if not path.is_file():
            raise ValueError(f"--bus {args.bus}: no such store {path}")
    else:
        path = args.data_dir / "attune.sqlite"
        if not path.is_file():
            raise ValueError(
                f"{args.data_dir}: no embedded store (attune.sqlite); give --data-dir, "
                "--events or --bus"
            )
    from streaming.sqlite.store import Store

    store = Store(path)
    try:
        rows = store.decision_log(args.tenant)
    finally:
        store.close()
    return _rows_frame(rows, catalog)


def _rows_frame(rows: list[dict[str, Any]], catalog: Catalog) -> pl.DataFrame:
    """Logged decisions with rewards as interactions, their arms looked up by strategy id in
    ``catalog`` (the arm index where a decision logged no id). A decision whose strategy the
    catalog lacks is left out and counted: a log made with another catalog fails, naming it."""
    from collab.model import describe_catalog

    index = {a: i for i, a in enumerate(catalog.arm_ids)}
    out = {"user_id": [], "arm": [], "reward": [], "ts": [], "context": []}  # type: ignore[var-annotated]
    foreign: list[str] = []
    for r in rows:
        strategy = r.get("strategy_id")
        arm = index.get(strategy) if strategy else r["action"]
        if arm is None or not 0 <= arm < catalog.n_arms:
            foreign.append(str(strategy or r["action"]))
            continue
        out["user_id"].append(f"{r['tenant']}/{r['user_id']}")
        out["arm"].append(int(arm))
        out["reward"].append(float(r["reward"]))
        out["ts"].append(float(r["ts"]))
        out["context"].append([float(x) for x in r["context"]])
    if foreign:
        what = (
            f"{len(foreign)} of {len(rows)} logged decisions name a strategy that catalog "
            f"{describe_catalog(catalog.identity())} does not have (e.g. {foreign[0]!r})"
        )
        if len(foreign) == len(rows):
            raise ValueError(
                f"{what}: train with the catalog they were made with (--catalog, or the "
                "catalog of --settings)"
            )
        print(f"attune train: left out {what}", file=sys.stderr)
    return pl.DataFrame(out, schema=SCHEMA)


def _kafka(args: argparse.Namespace) -> bool:
    """Whether ``--bus`` names Kafka (else the events come from a SQLite store or a file)."""
    from streaming.bus import bus_scheme

    return args.bus is not None and bus_scheme(args.bus) == "kafka"


def publish(model: Any, args: argparse.Namespace) -> str:
    """Publish to the models folder, or to the Kafka models topic with ``--bus``."""
    import collab

    if not _kafka(args):
        return str(collab.publish(model, args.data_dir / "models"))
    from collab.watch import model_to_bytes
    from streaming.kafka.bus import KafkaConfig
    from streaming.kafka.model_feed import MODEL_KEY
    from streaming.kafka.model_topic import publish_model

    config = KafkaConfig.from_url(args.bus)
    publish_model(config, MODEL_KEY.decode(), model_to_bytes(model))
    return f"{config.models} (key {MODEL_KEY.decode()!r}, version {model.version})"
