"""Decision logs in the layout OPE tools expect, and their Parquet files.

A log holds, per decision: ``user_id`` (str), ``ts`` (float, time order), ``context`` (the
context, list of floats), ``action`` (int arm), ``reward`` (float in
[0, 1]), ``pscore`` (the logging policy's probability of ``action``) and ``action_dist`` (its
full distribution over arms). In memory the same data is an obp-style dict of arrays::

    {"context": (n, d), "action": (n,), "reward": (n,), "pscore": (n,),
     "action_dist": (n, n_arms), "user_id": (n,), "ts": (n,)}

Parquet files carry ``attune.log_schema`` in their metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bandit.atomic import atomic_write

LOG_SCHEMA_VERSION = 1
REQUIRED = ("context", "action", "reward", "pscore")


class LogError(ValueError):
    """A decision log is malformed; the message names the field and the problem."""


@dataclass(frozen=True)
class LoggedData:
    """A validated decision log (arrays, one row per decision, in time order).

    Attributes
    ----------
    context : float array, shape (n, d)
    action : int array, shape (n,)
    reward : float array, shape (n,)
    pscore : float array, shape (n,)
    action_dist : float array, shape (n, n_arms) or None
    user_id : str array, shape (n,) or None
    ts : float array, shape (n,) or None
    """

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    action_dist: np.ndarray | None = None
    user_id: np.ndarray | None = None
    ts: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.action)
        if self.context.ndim != 2 or len(self.context) != n:
            raise LogError(f"context: expected shape ({n}, d), got {self.context.shape}")
        for name in ("reward", "pscore", "user_id", "ts"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise LogError(f"{name}: expected shape ({n},), got {arr.shape}")
        if n == 0:
            raise LogError("the log is empty")
        if self.action.min() < 0:
            raise LogError("action: every action must be a non-negative arm index")
        if not ((self.pscore > 0) & (self.pscore <= 1)).all():
            raise LogError("pscore: every propensity must be in (0, 1]")
        if not np.isfinite(self.reward).all():
            raise LogError("reward: every reward must be finite")
        if self.action_dist is not None:
            d = self.action_dist
            if d.ndim != 2 or len(d) != n or d.shape[1] <= self.action.max():
                raise LogError(f"action_dist: expected shape ({n}, > max action), got {d.shape}")

    @property
    def n_rounds(self) -> int:
        return len(self.action)

    @property
    def n_arms(self) -> int:
        if self.action_dist is not None:
            return int(self.action_dist.shape[1])
        return int(self.action.max()) + 1

    def to_dict(self) -> dict[str, Any]:
        """The obp-style dict (keys with None values left out)."""
        keys = ("context", "action", "reward", "pscore", "action_dist", "user_id", "ts")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def from_dict(data: Mapping[str, Any]) -> LoggedData:
    """Validate an obp-style dict (``context``, ``action``, ``reward``, ``pscore``, optional
    ``action_dist``, ``user_id``, ``ts``)."""
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise LogError(f"{missing[0]}: missing; a log needs {', '.join(REQUIRED)}")
    dist = data.get("action_dist")
    if dist is not None:
        dist = np.asarray(dist, dtype=np.float64)
        if dist.ndim == 3:  # obp's (n, n_actions, len_list) with one slot
            dist = dist[:, :, 0]
    uid = data.get("user_id")
    ts = data.get("ts")
    return LoggedData(
        context=np.atleast_2d(np.asarray(data["context"], dtype=np.float64)),
        action=np.asarray(data["action"], dtype=np.int64),
        reward=np.asarray(data["reward"], dtype=np.float64),
        pscore=np.asarray(data["pscore"], dtype=np.float64),
        action_dist=dist,
        user_id=None if uid is None else np.asarray(uid).astype(str),
        ts=None if ts is None else np.asarray(ts, dtype=np.float64),
    )


def log_frame(
    *,
    user_id: Sequence[str],
    ts: np.ndarray,
    context: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    pscore: np.ndarray,
    action_dist: np.ndarray | None,
    extra: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """A log as a polars DataFrame (list columns for ``context`` and ``action_dist``)."""
    cols: dict[str, Any] = {
        "user_id": list(user_id),
        "ts": np.asarray(ts, dtype=np.float64),
        "context": np.asarray(context, dtype=np.float64),
        "action": np.asarray(action, dtype=np.int64),
        "reward": np.asarray(reward, dtype=np.float64),
        "pscore": np.asarray(pscore, dtype=np.float64),
    }
    if action_dist is not None:
        cols["action_dist"] = np.asarray(action_dist, dtype=np.float64)
    for k, v in (extra or {}).items():
        cols[k] = v
    return pl.DataFrame(cols)


def frame_to_logged(df: pl.DataFrame, *, where: str = "log") -> LoggedData:
    """Validate a log DataFrame (see ``log_frame``); rows are sorted by ``ts`` when present."""
    missing = [k for k in REQUIRED if k not in df.columns]
    if missing:
        raise LogError(f"{where}: column {missing[0]!r} missing; a log needs {', '.join(REQUIRED)}")
    if "ts" in df.columns:
        df = df.sort("ts", maintain_order=True)
    data: dict[str, Any] = {
        k: _array(df[k]) for k in (*REQUIRED, "action_dist", "ts") if k in df.columns
    }
    if "user_id" in df.columns:
        data["user_id"] = df["user_id"].cast(pl.String).to_numpy()
    return from_dict(data)


def write_log(df: pl.DataFrame, path: str | Path) -> None:
    """Write a log DataFrame as Parquet, atomically, with the log schema version."""
    atomic_write_parquet(df, Path(path), metadata={"attune.log_schema": str(LOG_SCHEMA_VERSION)})


def atomic_write_parquet(
    df: pl.DataFrame, path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    table = df.to_arrow()
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    atomic_write(path, lambda fh: pq.write_table(table, fh))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _array(series: pl.Series) -> np.ndarray:
    if series.dtype in (pl.List, pl.Array) or isinstance(series.dtype, pl.List | pl.Array):
        return np.asarray(series.to_list(), dtype=np.float64)
    return series.to_numpy()


def store_frame(path: str | Path, *, tenant: str | None = None) -> pl.DataFrame:
    """The decision log of an embedded store (the SQLite file of ``attune serve``, or its data
    folder) in the ``log_frame`` layout, plus ``tenant``, ``decision_id``, ``strategy_id``,
    ``policy``, ``has_feedback`` and one ``audit_<key>`` column per audit attribute.

    ``user_id`` is the engine's scoped id, ``"tenant/user"``. Decisions without feedback carry
    the reward composer's default reward (see ``Store.decision_log``).
    """
    from streaming.sqlite.store import Store

    path = Path(path)
    if path.is_dir():
        path = path / "attune.sqlite"
    if not path.is_file():
        raise LogError(f"{path}: no such store (give the SQLite file or the data folder)")
    store = Store(path)
    try:
        rows = store.decision_log(tenant)
    finally:
        store.close()
    if not rows:
        raise LogError(
            f"{path}: the store holds no decisions" + (f" for tenant {tenant!r}" if tenant else "")
        )
    audit_keys = sorted({k for r in rows for k in (r.get("audit") or {})})
    extra: dict[str, Any] = {
        k: [r.get(k) for r in rows]
        for k in ("tenant", "decision_id", "strategy_id", "policy", "has_feedback")
    }
    for k in audit_keys:
        extra[f"audit_{k}"] = [str((r.get("audit") or {}).get(k, "")) for r in rows]
    return log_frame(
        user_id=[f"{r['tenant']}/{r['user_id']}" for r in rows],
        ts=np.array([r["ts"] for r in rows], dtype=np.float64),
        context=np.array([r["context"] for r in rows], dtype=np.float64),
        action=np.array([r["action"] for r in rows]),
        reward=np.array([r["reward"] for r in rows]),
        pscore=np.array([r["pscore"] for r in rows]),
        action_dist=np.array([r["action_dist"] for r in rows], dtype=np.float64),
        extra=extra,
    )


def load_log_frame(path: str | Path, *, tenant: str | None = None) -> pl.DataFrame:
    """A log as a DataFrame from a Parquet file, an embedded store file or its data folder."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise LogError(f"{path}: no such file")
        try:
            return pl.read_parquet(path)
        except Exception as exc:
            raise LogError(f"{path}: not a readable Parquet file ({exc})") from None
    return store_frame(path, tenant=tenant)


def load_log(path: str | Path, *, tenant: str | None = None) -> LoggedData:
    """``load_log_frame`` validated into ``LoggedData`` (sorted by time)."""
    return frame_to_logged(load_log_frame(path, tenant=tenant), where=str(path))
