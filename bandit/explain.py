"""Explanations: which of the user's preferences and which request features moved a choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit import _kernels as K
from bandit.catalog import Catalog, Level
from bandit.features import FEATURE_NAMES, FEATURE_PHRASES


@dataclass(frozen=True)
class Reason:
    """One reason behind a decision.

    ``kind`` is ``"preference"`` (learned from this user's feedback or pins), ``"request"``
    (a feature of this message, learned from all users) or ``"exploration"``.
    """

    kind: str
    text: str
    weight: float
    dimension: str | None = None
    level: str | None = None
    feature: str | None = None

    def to_dict(self) -> dict[str, object]:
        # Spelled out: ``dataclasses.asdict`` deep-copies, and every response carries reasons.
        return {
            "kind": self.kind,
            "text": self.text,
            "weight": self.weight,
            "dimension": self.dimension,
            "level": self.level,
            "feature": self.feature,
        }


def explain(
    catalog: Catalog,
    arm: int,
    mu: np.ndarray,
    W: np.ndarray,
    context: np.ndarray,
    dist: np.ndarray,
    *,
    top: int = 3,
    min_weight: float = 0.01,
) -> tuple[Reason, ...]:
    """Up to ``top`` reasons for choosing ``arm``, strongest first.

    Parameters
    ----------
    mu : ndarray, shape (d,)
        The user's posterior mean over arm features (attribute columns first).
    W : ndarray, shape (n_attributes, n_request_features)
        The shared interaction weights.
    context : ndarray, shape (n_request_features,)
    dist : ndarray, shape (n_arms,)
        The action distribution the arm was drawn from.
    """
    # Every decision is explained, so this runs once per request: the numbers (each chosen
    # level's lift over its dimension's average, and each dimension's two strongest request
    # features) come from one kernel call against a precomputed centring matrix, and only
    # reasons that can make the cut are built.
    tables = _tables(catalog)
    centring = tables.centring[arm]  # (n_dimensions, n_attribute_columns)
    terms = np.empty((centring.shape[0], 5))
    p_max = K.explain_terms(centring, mu, W, context, dist, terms)
    candidates: list[tuple[float, tuple[str, str, str, int | None]]] = []
    for (dim, level), (lift, q1, w1, q2, w2) in zip(
        tables.chosen[arm], terms.tolist(), strict=True
    ):
        candidates.append((lift, ("preference", dim, level, None)))
        for q, w in ((int(q1), w1), (int(q2), w2)):
            if q in tables.phrased:
                candidates.append((w, ("request", dim, level, q)))
    # A stable sort keeps the scoring order among equal weights.
    kept = sorted((c for c in candidates if c[0] >= min_weight), key=_by_weight)[:top]
    texts = tables.texts
    best = [
        Reason(
            kind, texts[dim, level, q], weight, dim, level, None if q is None else FEATURE_NAMES[q]
        )
        for weight, (kind, dim, level, q) in kept
    ]
    p = float(dist[arm])
    if p < p_max or not best:
        best.append(
            Reason(
                "exploration",
                "attune is still trying strategies to learn what works for you"
                if not best
                else "attune sometimes tries a different strategy to keep learning",
                p_max - p,
            )
        )
    return tuple(best)


def _by_weight(candidate: tuple[float, object]) -> float:
    return -candidate[0]


@dataclass(frozen=True)
class _Tables:
    """What explaining a catalog's decisions needs that the catalog alone decides.

    ``centring``: per arm, one row per dimension that takes the chosen level's column minus
    the mean of the dimension's columns, shape (n_arms, n_dimensions, n_attribute_columns).
    ``chosen``: per arm, ``(dimension name, level name)`` per dimension. ``phrased``: the
    request features that have a phrase. ``texts``: the reason text per (dimension, level,
    feature index or None for a preference).
    """

    catalog: Catalog  # kept so the id the tables are cached under stays unique
    centring: np.ndarray
    chosen: list[list[tuple[str, str]]]
    phrased: frozenset[int]
    texts: dict[tuple[str, str, int | None], str]


_TABLES: dict[int, _Tables] = {}


def _tables(catalog: Catalog) -> _Tables:
    """The explanation tables of a catalog, built once (catalogs are immutable)."""
    cached = _TABLES.get(id(catalog))
    if cached is not None and cached.catalog is catalog:
        return cached
    n_arms, n_dims = catalog.arms.shape
    centring = np.zeros((n_arms, n_dims, catalog.attributes.shape[1]))
    for j, (dim, start) in enumerate(zip(catalog.dimensions, catalog.level_offsets, strict=True)):
        centring[:, j, start : start + len(dim.levels)] = -1.0 / len(dim.levels)
        centring[np.arange(n_arms), j, start + catalog.arms[:, j]] += 1.0
    centring.setflags(write=False)
    chosen = [
        [
            (dim.name, dim.levels[idx].name)
            for dim, idx in zip(catalog.dimensions, catalog.arms[arm].tolist(), strict=True)
        ]
        for arm in range(n_arms)
    ]
    phrased = frozenset(q for q, name in enumerate(FEATURE_NAMES) if name in FEATURE_PHRASES)
    texts: dict[tuple[str, str, int | None], str] = {}
    for dim in catalog.dimensions:
        for level in dim.levels:
            texts[dim.name, level.name, None] = _text(dim.name, level, None)
            for q in phrased:
                texts[dim.name, level.name, q] = _text(dim.name, level, FEATURE_NAMES[q])
    tables = _Tables(catalog, centring, chosen, phrased, texts)
    _TABLES[id(catalog)] = tables
    return tables


def _text(dim: str, level: Level, feature: str | None) -> str:
    if feature is None:
        return f"you have responded well to {dim} '{level.label}'"
    return f"{FEATURE_PHRASES[feature]}, which favours {dim} '{level.label}'"
