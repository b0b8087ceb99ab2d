"""Explanations: which of the user's preferences and which request features moved a choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit import _kernels as K
from bandit.catalog import Catalog
from bandit.context import ContextSpec
from bandit.features import FEATURE_NAMES, FEATURE_PHRASES, N_FEATURES


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
    spec: ContextSpec | None = None,
    top: int = 3,
    min_weight: float = 0.01,
) -> tuple[Reason, ...]:
    """Up to ``top`` reasons for choosing ``arm``, strongest first.

    Parameters
    ----------
    mu : ndarray, shape (d,)
        The user's posterior mean over arm features (attribute columns first).
    W : ndarray, shape (n_attributes, n_context)
        The shared interaction weights of the user's tenant.
    context : ndarray, shape (n_context,)
    dist : ndarray, shape (n_arms,)
        The action distribution the arm was drawn from.
    spec : ContextSpec, optional
        Names the context's columns (default: ``ContextSpec()``); declared features become
        reasons too.
    """
    # Every decision is explained, so this runs once per request: the numbers (each chosen
    # level's lift over its dimension's average, and each dimension's two strongest request
    # features) come from one kernel call against a precomputed centring matrix, and only
    # reasons that can make the cut are built.
    spec = spec or _DEFAULT_SPEC
    tables = _tables(catalog, spec)
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
            kind, texts[dim, level, q], weight, dim, level, None if q is None else tables.names[q]
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

    catalog: Catalog  # kept (with the spec) so the ids the tables are cached under stay unique
    spec: ContextSpec
    names: tuple[str, ...]
    centring: np.ndarray
    chosen: list[list[tuple[str, str]]]
    phrased: frozenset[int]
    texts: dict[tuple[str, str, int | None], str]


_TABLES: dict[tuple[int, int], _Tables] = {}
_DEFAULT_SPEC = ContextSpec()


def _tables(catalog: Catalog, spec: ContextSpec) -> _Tables:
    """The explanation tables of a catalog and context, built once (both are immutable)."""
    cached = _TABLES.get((id(catalog), id(spec)))
    if cached is not None and cached.catalog is catalog and cached.spec is spec:
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
    names = spec.names
    phrases = {q: FEATURE_PHRASES[n] for q, n in enumerate(FEATURE_NAMES) if n in FEATURE_PHRASES}
    phrases.update(_declared_phrases(spec))
    texts: dict[tuple[str, str, int | None], str] = {}
    for dim in catalog.dimensions:
        for level in dim.levels:
            texts[dim.name, level.name, None] = (
                f"you have responded well to {dim.name} '{level.label}'"
            )
            for q, phrase in phrases.items():
                texts[dim.name, level.name, q] = (
                    f"{phrase}, which favours {dim.name} '{level.label}'"
                )
    tables = _Tables(catalog, spec, names, centring, chosen, frozenset(phrases), texts)
    _TABLES[(id(catalog), id(spec))] = tables
    return tables


def _declared_phrases(spec: ContextSpec) -> dict[int, str]:
    """A phrase per declared column: what the product told about the user or the request."""
    out: dict[int, str] = {}
    start = N_FEATURES
    for f in spec.features:
        whose = "your profile says" if f.scope == "user" else "this request has"
        for col in f.columns:
            name, _, value = col.partition("=")
            out[start] = f"{whose} {name} {value}".rstrip() if value else f"{whose} {name}"
            start += 1
    return out
