"""The trained collaborative-filtering model: factors, id maps, clusters, a cold-start classifier.

A ``CFModel`` is plain arrays, saved as one ``.npz`` with a schema version (no pickle), so a
worker can load a model written by another process and refuse one it does not understand. It
records the catalog it was trained on (``meta["catalog"]``: name, version, content hash), and
``check_catalog`` refuses to serve it on another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bandit import Catalog
from bandit.state import SchemaError, save_npz
from collab.clusters import member_means

# 2 added ``cluster_rewards``; version 1 files still load (without it).
MODEL_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
_ARRAYS = (
    "user_ids",
    "user_factors",
    "arm_factors",
    "user_events",
    "user_clusters",
    "cluster_centers",
    "classifier_coef",
    "classifier_intercept",
    "cluster_rewards",
)


class CatalogMismatch(ValueError):
    """A CF model trained on one catalog offered to an engine on another."""


def check_catalog(model: CFModel, catalog: Catalog) -> None:
    """Raise ``CatalogMismatch``, naming both catalogs, unless ``model`` was trained on
    ``catalog``: the same name, version and content hash. A model that recorded no catalog
    (trained before models recorded one) passes if its strategies are the catalog's.

    >>> import numpy as np
    >>> m = CFModel(version=7, cutoff_ts=0.0, kind="als", user_ids=np.array([], dtype=str),
    ...             arm_ids=("x", "y"), user_factors=np.zeros((0, 2), np.float32),
    ...             arm_factors=np.eye(2, dtype=np.float32), user_events=np.zeros(0, np.int64),
    ...             user_clusters=np.zeros(0, np.int64),
    ...             cluster_centers=np.ones((1, 2), np.float32),
    ...             meta={"catalog": {"name": "acme-support", "version": 3, "hash": "ab" * 32}})
    >>> check_catalog(m, Catalog.default())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    collab.model.CatalogMismatch: CF model v7 was trained on catalog 'acme-support' v3 ...
    """
    trained = model.catalog
    here = catalog.identity()
    if trained is None:
        if tuple(model.arm_ids) == catalog.arm_ids:
            return
        what = f"a catalog it did not record ({len(model.arm_ids)} strategies)"
    elif all(trained.get(k) == here[k] for k in ("name", "version", "hash")):
        return
    else:
        what = "catalog " + describe_catalog(trained)
    raise CatalogMismatch(
        f"CF model v{model.version} was trained on {what}, not on catalog "
        f"{describe_catalog(here)}; train one on this catalog (attune train --catalog)"
    )


def describe_catalog(identity: dict[str, Any]) -> str:
    """``'name' vN (sha256 0123456789ab)``, how messages name a catalog."""
    digest = str(identity.get("hash") or "")[:12]
    return f"{identity.get('name')!r} v{identity.get('version')} (sha256 {digest})"


def adapter_id(cluster: int | None, *, template: str = "cluster-{k}") -> str | None:
    """The serving adapter id of a cluster (e.g. a per-group LoRA adapter), None for None.

    >>> adapter_id(3)
    'cluster-3'
    """
    return None if cluster is None else template.format(k=int(cluster))


@dataclass(frozen=True)
class CFModel:
    """A versioned CF model.

    Attributes
    ----------
    version : int
        Increases with every training run; ``ModelWatcher`` loads the highest one.
    cutoff_ts : float
        Event time of the newest interaction trained on. Feedback up to it is inside the user
        factors; a warm start replays only feedback after it (see ``collab.warm_start``).
    kind : str
        ``"als"`` or ``"bpr"``.
    user_ids : ndarray of str, shape (n_users,)
    arm_ids : tuple of str, length n_arms
        Strategy ids of the arms the factors belong to (matched by id at warm start, so a
        changed catalog keeps what still exists).
    user_factors : ndarray of float32, shape (n_users, factors)
    arm_factors : ndarray of float32, shape (n_arms, factors)
    user_events : ndarray of int64, shape (n_users,)
        Interactions behind each user's factors (the prior's confidence grows with it).
    user_clusters : ndarray of int64, shape (n_users,)
        k-means cluster of each user.
    cluster_centers : ndarray of float32, shape (n_clusters, factors)
    classifier_coef, classifier_intercept : ndarrays, shapes (n_clusters, n_context), (n_clusters,)
        Multinomial logistic regression from a first request's features to a cluster; empty
        (0 rows) when the features did not predict clusters better than chance.
    cluster_rewards : ndarray of float64, shape (n_clusters, n_arms)
        Each cluster's mean observed reward per arm (its members' events, shrunk toward the
        centers' scores where few): the cold-start prior means are fitted to it. Empty (0 rows)
        in models written before it existed; the centers' scores stand in.
    calibration : tuple of float
        ``(a, b)``: the reward a factor score stands for, ``a + b * (user . arm)``.
    meta : dict
        Training parameters and counts (JSON-able), e.g. the weighting and the iterations, and
        ``catalog``: the ``Catalog.identity()`` of the catalog trained on.

    Examples
    --------
    >>> import numpy as np
    >>> m = CFModel(version=1, cutoff_ts=0.0, kind="als", user_ids=np.array(["t/a"]),
    ...             arm_ids=("x", "y"), user_factors=np.ones((1, 2), np.float32),
    ...             arm_factors=np.eye(2, dtype=np.float32), user_events=np.array([3]),
    ...             user_clusters=np.array([0]), cluster_centers=np.ones((1, 2), np.float32))
    >>> m.cluster_of("t/a"), m.cluster_of("t/b")
    (0, None)
    """

    version: int
    cutoff_ts: float
    kind: str
    user_ids: np.ndarray
    arm_ids: tuple[str, ...]
    user_factors: np.ndarray
    arm_factors: np.ndarray
    user_events: np.ndarray
    user_clusters: np.ndarray
    cluster_centers: np.ndarray
    classifier_coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    classifier_intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cluster_rewards: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    calibration: tuple[float, float] = (0.5, 1.0)
    meta: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n, f = self.user_factors.shape if self.user_factors.ndim == 2 else (-1, -1)
        if n != len(self.user_ids):
            raise ValueError(
                f"user_factors: expected shape ({len(self.user_ids)}, factors), "
                f"got {self.user_factors.shape}"
            )
        if self.arm_factors.shape != (len(self.arm_ids), f):
            raise ValueError(
                f"arm_factors: expected shape ({len(self.arm_ids)}, {f}), "
                f"got {self.arm_factors.shape}"
            )
        for name in ("user_events", "user_clusters"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},), got {getattr(self, name).shape}")
        if self.cluster_centers.ndim != 2 or self.cluster_centers.shape[1] != f:
            raise ValueError(
                f"cluster_centers: expected shape (k, {f}), got {self.cluster_centers.shape}"
            )
        k = self.n_clusters
        if n and (self.user_clusters.min() < 0 or self.user_clusters.max() >= k):
            raise ValueError(f"user_clusters: every cluster must be in [0, {k})")
        if len(self.classifier_coef) and (
            self.classifier_coef.shape[0] != k or self.classifier_intercept.shape != (k,)
        ):
            raise ValueError(f"classifier: expected {k} rows of coefficients and intercepts")
        if len(self.cluster_rewards) and self.cluster_rewards.shape != (k, len(self.arm_ids)):
            raise ValueError(
                f"cluster_rewards: expected shape ({k}, {len(self.arm_ids)}), "
                f"got {self.cluster_rewards.shape}"
            )
        if self.kind not in ("als", "bpr"):
            raise ValueError(f"kind must be 'als' or 'bpr', got {self.kind!r}")

    # ------------------------------------------------------------------ lookups
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def factors(self) -> int:
        return int(self.arm_factors.shape[1])

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_centers.shape[0])

    @property
    def has_classifier(self) -> bool:
        return len(self.classifier_coef) > 0

    @property
    def catalog(self) -> dict[str, Any] | None:
        """The catalog trained on (``Catalog.identity()``), None if the model recorded none."""
        found = self.meta.get("catalog")
        return dict(found) if isinstance(found, dict) else None

    def rows(self, user_ids: Sequence[str]) -> np.ndarray:
        """Row of each user in the factor arrays, -1 for users the model does not know."""
        index = self._user_index()
        return np.array([index.get(u, -1) for u in user_ids], dtype=np.int64)

    def cluster_of(self, user_key: str) -> int | None:
        """The k-means cluster of a known user, None for a user the model has not seen."""
        row = self._user_index().get(user_key)
        return None if row is None else int(self.user_clusters[row])

    def cluster_probabilities(self, contexts: np.ndarray) -> np.ndarray:
        """Cluster probabilities from first-request features, shape (m, n_clusters).

        Without a classifier every row is the clusters' share of the users (the population).
        """
        contexts = np.atleast_2d(np.asarray(contexts, dtype=np.float64))
        if not self.has_classifier:
            sizes = np.bincount(self.user_clusters, minlength=self.n_clusters).astype(float)
            return np.repeat((sizes / max(sizes.sum(), 1.0))[None], len(contexts), axis=0)
        logits = contexts @ self.classifier_coef.T + self.classifier_intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict_cluster(self, contexts: np.ndarray) -> np.ndarray:
        """Most likely cluster of new users from their first request, shape (m,) int64."""
        return np.argmax(self.cluster_probabilities(contexts), axis=1).astype(np.int64)

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        """Calibrated rewards ``a + b * U V^T`` of known users' rows, shape (n, n_arms)."""
        a, b = self.calibration
        return a + b * (self.user_factors[user_rows] @ self.arm_factors.T).astype(np.float64)

    def without(self, user_keys: Sequence[str]) -> CFModel:
        """The same model (same version) with these users' rows gone: what an erasure leaves
        of a kept model.

        The cluster centers are the remaining members' mean factors again: a center is a mean
        of user rows, so one kept as it was would give back the factors of a user alone in their
        cluster (and those of one of two, from the other's row). A cluster left without members
        gets every remaining user's mean, as training gives an empty cluster, and that center's
        scores for rewards. The arm factors, the classifier and the rewards of clusters that
        keep members are fitted on interactions the model does not hold: they keep the erased
        users' share until the next ``attune train``.
        """
        keep = self.rows(user_keys)
        drop = np.zeros(self.n_users, dtype=bool)
        drop[keep[keep >= 0]] = True
        if not drop.any():
            return self
        factors, labels, k = self.user_factors[~drop], self.user_clusters[~drop], self.n_clusters
        centers = member_means(factors, labels, k)
        rewards = self.cluster_rewards
        empty = np.bincount(labels, minlength=k) == 0
        if len(rewards) and empty.any():
            a, b = self.calibration
            rewards = rewards.copy()
            rewards[empty] = a + b * (centers[empty] @ self.arm_factors.T).astype(np.float64)
        return replace(
            self,
            user_ids=self.user_ids[~drop],
            user_factors=factors,
            user_events=self.user_events[~drop],
            user_clusters=labels,
            cluster_centers=centers,
            cluster_rewards=rewards,
        )

    def _user_index(self) -> dict[str, int]:
        if not self._index and self.n_users:
            self._index.update({u: i for i, u in enumerate(self.user_ids.tolist())})
        return self._index

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the model to one ``.npz`` atomically (no pickle)."""
        meta = {
            "schema_version": MODEL_SCHEMA_VERSION,
            "version": self.version,
            "cutoff_ts": self.cutoff_ts,
            "kind": self.kind,
            "arm_ids": list(self.arm_ids),
            "calibration": list(self.calibration),
            "meta": self.meta,
        }
        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAYS}
        arrays["user_ids"] = np.asarray(self.user_ids, dtype=str)
        arrays["meta"] = np.array(json.dumps(meta))
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> CFModel:
        """Read a model written by ``save``; an unknown schema version raises ``SchemaError``."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("schema_version") not in READABLE_VERSIONS:
            raise SchemaError(
                f"{path}: CF model schema version {meta.get('schema_version')} is not supported "
                f"(this attune reads versions {READABLE_VERSIONS})"
            )
        return cls(
            version=int(meta["version"]),
            cutoff_ts=float(meta["cutoff_ts"]),
            kind=meta["kind"],
            arm_ids=tuple(meta["arm_ids"]),
            calibration=(float(meta["calibration"][0]), float(meta["calibration"][1])),
            meta=meta["meta"],
            **arrays,
        )
