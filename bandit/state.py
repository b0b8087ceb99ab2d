"""Per-user posterior state in compact, growable arrays.

One row per user: the posterior precision as a packed float32 triangle, the natural mean
``b = A @ mu``, the prior it reverts to under forgetting, counters, the sums of the user's
residuals and arm features that the empirical prior's estimate pairs up (``bandit.shared``),
and the row of the user's tenant. At ``d`` features a row holds ``d (d + 1) / 2 + 3 d + 2``
float32 values, three int32 and a float64 timestamp; ``UserState.bytes_per_user`` measures a
user's cost, id map included, on live objects.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from bandit.atomic import atomic_write

SCHEMA_VERSION = 2
# A user's record: what travels with them between engines (changelogs, checkpoints, exports).
_ARRAYS = (
    "A",
    "B",
    "prior_mean",
    "prior_prec",
    "n_feedback",
    "n_decisions",
    "last_seen",
    "resid_sum",
    "x_sum",
)
# Added after the first records were written: a record without them starts them at zero.
_OPTIONAL = ("resid_sum", "x_sum")
NewUser = Callable[[str], tuple[int, float]]


class SchemaError(ValueError):
    """A saved file has a schema version this code does not read."""


def packed_size(d: int) -> int:
    return d * (d + 1) // 2


def packed_identity(d: int, scale: float = 1.0) -> np.ndarray:
    """The packed lower triangle of ``scale * I``, shape (d*(d+1)/2,)."""
    out = np.zeros(packed_size(d), dtype=np.float32)
    out[[i * (i + 1) // 2 + i for i in range(d)]] = scale
    return out


def unpack(ap: np.ndarray, d: int) -> np.ndarray:
    """The full symmetric (d, d) float64 matrix of a packed lower triangle."""
    rows, cols = np.tril_indices(d)
    out = np.zeros((d, d))
    out[rows, cols] = ap
    out[cols, rows] = ap
    return out


class UserState:
    """Posterior rows of all users, addressed by user id.

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of the arm feature vectors the posteriors are over.
    prior_precision : float
        Precision of the isotropic prior a new user starts from (its mean is zero until
        ``set_prior`` gives one).
    capacity : int
        Rows allocated up front; the arrays double when they fill.
    new_user : callable, optional
        ``new_user(user_id) -> (tenant row, prior precision)`` for a user seen for the first
        time (the engine's shared model); default tenant row 0 and ``prior_precision``.

    Examples
    --------
    >>> state = UserState(n_features=4)
    >>> state.rows(["ana", "bo", "ana"]).tolist()
    [0, 1, 0]
    """

    def __init__(
        self,
        n_features: int,
        *,
        prior_precision: float = 1.0,
        capacity: int = 1024,
        new_user: NewUser | None = None,
    ) -> None:
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if not prior_precision > 0:
            raise ValueError(f"prior_precision must be > 0, got {prior_precision}")
        self.d = n_features
        self.prior_precision = float(prior_precision)
        self.ids: dict[str, int] = {}
        self._row_ids: list[str | None] = []
        self._free: list[int] = []
        self._identity = packed_identity(n_features)
        self.new_user = new_user
        self._alloc(max(1, capacity))

    # ------------------------------------------------------------------ rows
    def rows(self, user_ids: Sequence[str], *, create: bool = True) -> np.ndarray:
        """Row index per user id, shape (n,), int64; new users get fresh prior rows.

        With ``create=False`` an unknown id raises ``KeyError``.
        """
        out = np.empty(len(user_ids), dtype=np.int64)
        ids = self.ids
        for i, uid in enumerate(user_ids):
            row = ids.get(uid)
            if row is None:
                if not create:
                    raise KeyError(f"unknown user {uid!r}")
                row = self._add(uid)
            out[i] = row
        return out

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def user_ids(self) -> list[str]:
        return list(self.ids)

    def set_prior(
        self,
        rows: np.ndarray,
        mean: np.ndarray,
        precision: float | np.ndarray,
        *,
        reset: bool = True,
    ) -> None:
        """Give users a prior ``N(mean, (precision * I)^-1)``; with ``reset`` drop their evidence.

        ``mean`` has shape (n, d') with d' <= d (missing trailing dimensions are zero).
        """
        rows = np.asarray(rows, dtype=np.int64)
        mean = np.atleast_2d(np.asarray(mean, dtype=np.float64))
        if mean.shape[0] != len(rows) or mean.shape[1] > self.d:
            raise ValueError(f"mean: expected shape ({len(rows)}, <= {self.d}), got {mean.shape}")
        prec = np.broadcast_to(np.asarray(precision, dtype=np.float64), (len(rows),))
        if not np.all(prec > 0):
            raise ValueError("precision must be > 0")
        full = np.zeros((len(rows), self.d))
        full[:, : mean.shape[1]] = mean
        self.prior_mean[rows] = full
        self.prior_prec[rows] = prec
        if reset:
            self.A[rows] = prec[:, None] * self._identity[None, :]
            self.B[rows] = prec[:, None] * full

    def remove(self, user_id: str) -> bool:
        """Erase a user: the row returns to the default prior and is reused later."""
        return self.remove_many([user_id]) == 1

    def remove_many(self, user_ids: Iterable[str]) -> int:
        """Erase users, their rows reset in one pass (users leaving memory go by the
        thousand, and one reset per user was most of their cost); returns how many it held."""
        rows = [row for row in map(self.ids.pop, user_ids, repeat(None)) if row is not None]
        if rows:
            self._reset_rows(np.array(rows))
            for row in rows:
                self._row_ids[row] = None
            self._free.extend(rows)
        return len(rows)

    def learning_arrays(self) -> tuple[np.ndarray, ...]:
        """``(A, B, prior_mean, prior_prec, n_feedback)``, the arrays the learning kernels
        update, in the order they take them."""
        return self.A, self.B, self.prior_mean, self.prior_prec, self.n_feedback

    def prior_sums(self) -> tuple[np.ndarray, ...]:
        """``(tenant, resid_sum, x_sum)``: the arrays the empirical prior's estimate reads."""
        return self.tenant, self.resid_sum, self.x_sum

    # ------------------------------------------------------------------ one user as a record
    def get(self, user_id: str) -> dict[str, np.ndarray]:
        """Every array of one user (copies), for changelogs and exports."""
        row = self.ids[user_id]
        return {name: np.array(getattr(self, name)[row]) for name in _ARRAYS}

    def put(self, user_id: str, record: Mapping[str, Any]) -> None:
        """Overwrite (or create) one user from a record made by ``get``."""
        row = int(self.rows([user_id])[0])
        for name in _ARRAYS:
            arr = getattr(self, name)
            if name not in record and name in _OPTIONAL:
                arr[row] = 0
                continue
            value = np.asarray(record[name], dtype=arr.dtype)
            if value.shape != arr.shape[1:]:
                raise ValueError(f"{name}: expected shape {arr.shape[1:]}, got {value.shape}")
            arr[row] = value

    # ------------------------------------------------------------------ size
    def bytes_per_user(self) -> float:
        """Bytes of arrays per user row plus the id map's share, measured on live objects."""
        per_row = sum(
            getattr(self, n).itemsize * int(np.prod(getattr(self, n).shape[1:]))
            for n in (*_ARRAYS, "tenant")
        )
        if not self.ids:
            return float(per_row)
        sample = list(self.ids.items())[: min(1000, len(self.ids))]
        id_bytes = np.mean([sys.getsizeof(k) + sys.getsizeof(v) for k, v in sample])
        dict_share = sys.getsizeof(self.ids) / len(self.ids) + 8  # + the reverse list slot
        return float(per_row + id_bytes + dict_share)

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        n = len(self._row_ids)
        live = np.array([r is not None for r in self._row_ids], dtype=bool)
        out = {name: getattr(self, name)[:n][live] for name in _ARRAYS}
        out["user_ids"] = np.array([r for r in self._row_ids if r is not None], dtype=str)
        out["meta"] = np.array([SCHEMA_VERSION, self.d, self.prior_precision], dtype=np.float64)
        return out

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], *, new_user: NewUser | None = None
    ) -> UserState:
        version, d, prior_precision = arrays["meta"].tolist()
        if int(version) != SCHEMA_VERSION:
            raise SchemaError(
                f"user state schema version {int(version)} is not supported "
                f"(this attune reads version {SCHEMA_VERSION})"
            )
        ids = [str(u) for u in arrays["user_ids"].tolist()]
        state = cls(
            int(d),
            prior_precision=prior_precision,
            capacity=max(1024, 2 * len(ids)),
            new_user=new_user,
        )
        state.rows(ids)
        for name in _ARRAYS:
            getattr(state, name)[: len(ids)] = arrays[name]
        return state

    def save(self, path: str | Path) -> None:
        save_npz(path, self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> UserState:
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays(dict(data))

    # ------------------------------------------------------------------ internals
    def _alloc(self, capacity: int) -> None:
        d, p = self.d, packed_size(self.d)
        old = {name: getattr(self, name) for name in _ARRAYS if hasattr(self, name)}
        self.A = np.zeros((capacity, p), dtype=np.float32)
        self.B = np.zeros((capacity, d), dtype=np.float32)
        self.prior_mean = np.zeros((capacity, d), dtype=np.float32)
        self.prior_prec = np.zeros(capacity, dtype=np.float32)
        self.n_feedback = np.zeros(capacity, dtype=np.int32)
        self.n_decisions = np.zeros(capacity, dtype=np.int32)
        self.last_seen = np.zeros(capacity, dtype=np.float64)
        self.resid_sum = np.zeros(capacity, dtype=np.float32)
        self.x_sum = np.zeros((capacity, d), dtype=np.float32)
        tenant = np.zeros(capacity, dtype=np.int32)
        previous: np.ndarray | None = getattr(self, "tenant", None)
        if previous is not None:
            tenant[: len(previous)] = previous
        self.tenant: np.ndarray = tenant
        for name, arr in old.items():
            getattr(self, name)[: len(arr)] = arr
        self._capacity = capacity

    def _add(self, user_id: str) -> int:
        if self._free:
            row = self._free.pop()
            self._row_ids[row] = user_id
        else:
            row = len(self._row_ids)
            if row >= self._capacity:
                self._alloc(2 * self._capacity)
            self._row_ids.append(user_id)
        tenant, lam = self.new_user(user_id) if self.new_user else (0, self.prior_precision)
        self._reset_rows(np.array([row]), lam)
        self.tenant[row] = tenant
        self.ids[user_id] = row
        return row

    def _reset_rows(self, rows: np.ndarray, lam: float | None = None) -> None:
        lam = self.prior_precision if lam is None else lam
        self.A[rows] = lam * self._identity
        self.B[rows] = 0.0
        self.prior_mean[rows] = 0.0
        self.prior_prec[rows] = lam
        self.n_feedback[rows] = 0
        self.n_decisions[rows] = 0
        self.last_seen[rows] = 0.0
        self.resid_sum[rows] = 0.0
        self.x_sum[rows] = 0.0


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as one ``.npz``, atomically (see ``atomic_write``),
    creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
