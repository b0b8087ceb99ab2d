"""Explanations: which of the user's preferences and which request features moved a choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    # Every decision is explained, so this runs once per request: each chosen level's lift
    # over its dimension's average is one product with a precomputed centring matrix, and
    # only reasons that can make the cut are built.
    centring = _centring(catalog)[arm]  # (n_dimensions, n_attribute_columns)
    n = centring.shape[1]
    lift = (centring @ mu[:n]).tolist()
    # Request features: each chosen level's interaction weights against its dimension's average.
    contrib = (centring @ W[:n]) * context
    best_features = np.argsort(-contrib, axis=1)[:, :2].tolist()
    contrib_rows = contrib.tolist()
    candidates: list[tuple[float, tuple[str, str, Level, str | None]]] = []
    for j, (dim, idx) in enumerate(
        zip(catalog.dimensions, catalog.arms[arm].tolist(), strict=True)
    ):
        level = dim.levels[idx]
        candidates.append((lift[j], ("preference", dim.name, level, None)))
        for q in best_features[j]:
            name = FEATURE_NAMES[q]
            if name in FEATURE_PHRASES:
                candidates.append((contrib_rows[j][q], ("request", dim.name, level, name)))
    # A stable sort keeps the scoring order among equal weights.
    kept = sorted((c for c in candidates if c[0] >= min_weight), key=lambda c: -c[0])[:top]
    best = [_reason(weight, *what) for weight, what in kept]
    if dist[arm] < dist.max() or not best:
        best.append(
            Reason(
                "exploration",
                "attune is still trying strategies to learn what works for you"
                if not best
                else "attune sometimes tries a different strategy to keep learning",
                float(dist.max() - dist[arm]),
            )
        )
    return tuple(best)


def _reason(weight: float, kind: str, dim: str, level: Level, feature: str | None) -> Reason:
    if feature is None:
        text = f"you have responded well to {dim} '{level.label}'"
    else:
        text = f"{FEATURE_PHRASES[feature]}, which favours {dim} '{level.label}'"
    return Reason(kind, text, weight, dimension=dim, level=level.name, feature=feature)


_CENTRING: dict[int, tuple[Catalog, np.ndarray]] = {}


def _centring(catalog: Catalog) -> np.ndarray:
    """Per arm, one row per dimension that takes the chosen level's column minus the mean of
    the dimension's columns: shape (n_arms, n_dimensions, n_attribute_columns).

    Cached by catalog (catalogs are immutable; the catalog is kept so its id stays unique).
    """
    cached = _CENTRING.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    n_arms, n_dims = catalog.arms.shape
    out = np.zeros((n_arms, n_dims, catalog.attributes.shape[1]))
    for j, (dim, start) in enumerate(zip(catalog.dimensions, catalog.level_offsets, strict=True)):
        out[:, j, start : start + len(dim.levels)] = -1.0 / len(dim.levels)
        out[np.arange(n_arms), j, start + catalog.arms[:, j]] += 1.0
    out.setflags(write=False)
    _CENTRING[id(catalog)] = (catalog, out)
    return out
