"""The user x arm confidence matrix, built with polars from a table of interactions.

An interaction is one reward: ``user_id`` (str), ``arm`` (int), ``reward`` (float in [0, 1]),
``ts`` (float, event time) and optionally ``weight`` (float, default 1). Rewards become
implicit-feedback signals around a neutral ``threshold``: a reward above it says "liked", below
it "disliked", at it nothing. Per (user, arm) cell the signed signals are summed, and the sum
becomes an implicit-ALS confidence (Hu, Koren & Volinsky 2008): ``+(1 + alpha * f(s))`` for a
liked cell, ``-(1 + alpha * f(|s|))`` for a disliked one (``implicit`` reads a negative value as
"preference 0 with that confidence"). ``f`` is the identity, ``log1p(s / epsilon)`` or 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

REQUIRED_COLUMNS = {"user_id": pl.String, "arm": None, "reward": None, "ts": None}
SCHEMES = ("linear", "log", "binary")


class NotEnoughData(ValueError):
    """Too few users, arms or interactions to train on; the message says how many there were."""


@dataclass(frozen=True)
class Weighting:
    """How rewards become implicit-feedback confidences.

    Parameters
    ----------
    scheme : {"linear", "log", "binary"}
        ``f`` in ``1 + alpha * f(s)``: linear in the summed signal, logarithmic (damps users who
        hammer one arm), or binary (only the sign counts).
    alpha : float > 0
        Confidence gained per unit of signal.
    threshold : float in [0, 1]
        The neutral reward: the default reward for "no reaction" belongs here.
    epsilon : float > 0
        Scale of the ``log`` scheme.

    Examples
    --------
    >>> Weighting(alpha=10.0).confidence(np.array([0.5, -1.0, 0.0]))
    array([  6., -11.,   0.])
    """

    scheme: str = "linear"
    alpha: float = 10.0
    threshold: float = 0.5
    epsilon: float = 1.0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")

    def confidence(self, signal: np.ndarray) -> np.ndarray:
        """Signed confidences for summed signals, same shape; a zero signal stays zero."""
        mag = np.abs(signal)
        if self.scheme == "log":
            mag = np.log1p(mag / self.epsilon)
        elif self.scheme == "binary":
            mag = (mag > 0).astype(np.float64)
        return np.sign(signal) * (1.0 + self.alpha * mag) * (signal != 0)

    def to_dict(self) -> dict[str, float | str]:
        return {
            "scheme": self.scheme,
            "alpha": self.alpha,
            "threshold": self.threshold,
            "epsilon": self.epsilon,
        }


@dataclass(frozen=True)
class Interactions:
    """A confidence matrix with its id maps.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of float32, shape (n_users, n_arms)
        Signed confidences (see ``Weighting``); rows follow ``user_ids``.
    user_ids : ndarray of str, shape (n_users,)
    n_events : ndarray of int64, shape (n_users,)
        Interactions per user (the evidence behind the row).
    cell_reward : ndarray of float32, shape (nnz,)
        Mean reward of each stored cell, in ``matrix.data`` order (for calibration).
    cutoff_ts : float
        The latest event time used; feedback after it is not in the matrix.
    n_interactions : int
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    n_events: np.ndarray
    cell_reward: np.ndarray
    cutoff_ts: float
    n_interactions: int


def check_interactions(df: pl.DataFrame) -> None:
    """Raise ``ValueError`` naming the column when ``df`` lacks one or has the wrong type."""
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"interactions must be a polars DataFrame, got {type(df).__name__}")
    for name in REQUIRED_COLUMNS:
        if name not in df.columns:
            raise ValueError(
                f"interactions: missing column {name!r} (need user_id, arm, reward, ts)"
            )
    if df.schema["user_id"] != pl.String:
        raise ValueError(f"interactions.user_id: expected strings, got {df.schema['user_id']}")
    for name in ("arm", "reward", "ts", "weight"):
        if name in df.columns and not df.schema[name].is_numeric():
            raise ValueError(f"interactions.{name}: expected numbers, got {df.schema[name]}")


def build_matrix(df: pl.DataFrame, n_arms: int, weighting: Weighting | None = None) -> Interactions:
    """Aggregate interactions into the user x arm confidence matrix.

    Two polars group-bys: (user, arm) sums the signals, then user collects each row's cells, so
    the CSR arrays come out of the second one directly (no sort of the string ids). Rows are
    users in order of their first interaction.

    Parameters
    ----------
    df : polars.DataFrame
        Columns ``user_id, arm, reward, ts`` and optionally ``weight``.
    n_arms : int
        Number of columns; every ``arm`` must lie in ``[0, n_arms)``.
    weighting : Weighting, optional

    Returns
    -------
    Interactions
    """
    check_interactions(df)
    w = weighting or Weighting()
    if len(df) == 0:
        raise NotEnoughData("interactions: no events to train on")
    arm_min, arm_max, cutoff = df.select(
        pl.col("arm").min().alias("lo"), pl.col("arm").max().alias("hi"), pl.col("ts").max()
    ).row(0)
    if arm_min < 0 or arm_max >= n_arms:
        raise ValueError(
            f"interactions.arm: every arm must be in [0, {n_arms}), got [{arm_min}, {arm_max}]"
        )
    weight = pl.col("weight") if "weight" in df.columns else pl.lit(1.0)
    cells = (
        df.lazy()
        .select(
            "user_id",
            pl.col("arm").cast(pl.Int32),
            (weight * (pl.col("reward") - w.threshold)).alias("signal"),
            (weight * pl.col("reward")).alias("wr"),
            weight.alias("w"),
        )
        # maintain_order: rows in order of first appearance, the same in every run (a seeded
        # fit must not depend on hash order), and no slower here than an unordered group-by
        .group_by("user_id", "arm", maintain_order=True)
        .agg(
            pl.col("signal").sum(),
            (pl.col("wr").sum() / pl.col("w").sum()).alias("r"),
            pl.len().alias("n"),
        )
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("arm"), pl.col("signal"), pl.col("r"), pl.col("n").sum())
        .collect()
    )
    lengths = cells["arm"].list.len().to_numpy()
    indptr = np.zeros(len(cells) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # copies: polars hands out read-only views, and implicit's Cython wants writable buffers
    indices = np.array(cells["arm"].explode().to_numpy(), dtype=np.int32)
    signal = cells["signal"].explode().to_numpy()
    data = w.confidence(signal).astype(np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(cells), n_arms))
    reward = cells["r"].explode().to_numpy().astype(np.float32)
    if (data == 0).any():  # neutral cells carry no preference; implicit must not see them
        keep = data != 0
        rows = np.repeat(np.arange(len(cells)), lengths)
        np.cumsum(np.bincount(rows[keep], minlength=len(cells)), out=indptr[1:])
        matrix = sp.csr_matrix((data[keep], indices[keep], indptr), shape=(len(cells), n_arms))
        reward = reward[keep]
    return Interactions(
        matrix=matrix,
        user_ids=cells["user_id"].to_numpy(),
        n_events=cells["n"].to_numpy().astype(np.int64),
        cell_reward=reward,
        cutoff_ts=float(cutoff),
        n_interactions=len(df),
    )


def user_contexts(
    df: pl.DataFrame, user_ids: Sequence[str] | np.ndarray, max_rows: int = 200_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Request features of known users' events with each event's user row.

    Returns ``(contexts (m, width), rows (m,) int64)`` for at most ``max_rows`` events (a
    seeded sample), rows indexing ``user_ids``; None when ``df`` has no ``context`` column.
    Every request of a user is a sample of how that user writes, so the cold-start classifier
    trains on all of them and is applied to a new user's first.
    """
    if "context" not in df.columns:
        return None
    rows = df.select("user_id", "context").filter(pl.col("context").is_not_null())
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, seed=seed)
    if len(rows) == 0:
        return None
    index = pl.DataFrame({"user_id": np.asarray(user_ids), "row": np.arange(len(user_ids))})
    rows = rows.join(index, on="user_id", how="inner", maintain_order="left")
    ctx = np.stack(list(rows["context"].to_numpy())).astype(np.float64).reshape(len(rows), -1)
    return ctx, rows["row"].to_numpy().astype(np.int64)
