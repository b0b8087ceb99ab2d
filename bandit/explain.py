"""Explanations: which of the user's preferences and which request features moved a choice."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bandit.catalog import Catalog
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
        return asdict(self)


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
    reasons: list[Reason] = []
    levels = catalog.arms[arm]
    for dim, off, idx in zip(catalog.dimensions, catalog.level_offsets, levels, strict=True):
        block = mu[off : off + len(dim.levels)]
        lift = float(block[idx] - block.mean())
        level = dim.levels[idx]
        reasons.append(
            Reason(
                "preference",
                f"you have responded well to {dim.name} '{level.label}'",
                lift,
                dimension=dim.name,
                level=level.name,
            )
        )
        # Request features: this level's interaction weights against its dimension's average.
        rows = W[off : off + len(dim.levels)]
        contrib = (rows[idx] - rows.mean(axis=0)) * context
        for q in np.argsort(-contrib)[:2]:
            name = FEATURE_NAMES[q]
            if name in FEATURE_PHRASES:
                reasons.append(
                    Reason(
                        "request",
                        f"{FEATURE_PHRASES[name]}, which favours {dim.name} '{level.label}'",
                        float(contrib[q]),
                        dimension=dim.name,
                        level=level.name,
                        feature=name,
                    )
                )
    best = sorted((r for r in reasons if r.weight >= min_weight), key=lambda r: -r.weight)[:top]
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
