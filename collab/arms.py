"""CF item factors in the engine's arm space, including arms the model never saw.

Arms are matched by strategy id, so a catalog that gained or lost strategies since training
keeps the factors of every strategy that still exists. A new strategy gets the factor its
attributes imply: a ridge regression of the known arms' factors on their attribute one-hots,
evaluated at the new arm's one-hots (its depth, tone, format and length are known even if
nobody has seen it yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit import Catalog
from collab.model import CFModel


@dataclass(frozen=True)
class ArmSpace:
    """The CF factors mapped onto an engine's catalog.

    Attributes
    ----------
    factors : ndarray of float64, shape (n_arms, f)
        Item factors in the catalog's arm order (``f`` <= the room in the arm features).
    rotation : ndarray of float64, shape (model factors, f)
        Applied to user factors too, so ``U @ rotation @ factors.T`` keeps the model's scores
        (identity unless the model had more factors than there is room for).
    imputed : ndarray of bool, shape (n_arms,)
        Arms whose factors come from their attributes, not from training.
    """

    factors: np.ndarray
    rotation: np.ndarray
    imputed: np.ndarray


def attribute_regression(
    attributes: np.ndarray, factors: np.ndarray, ridge: float = 1e-2
) -> np.ndarray:
    """Coefficients ``B`` (width, f) of ``factors ~ attributes @ B`` by ridge regression."""
    width = attributes.shape[1]
    gram = attributes.T @ attributes + ridge * np.eye(width)
    return np.linalg.solve(gram, attributes.T @ factors)


def arm_space(catalog: Catalog, model: CFModel, room: int) -> ArmSpace:
    """Item factors for every arm of ``catalog``, at most ``room`` wide.

    Raises ``ValueError`` when the model shares no strategy with the catalog.
    """
    if room < 1:
        raise ValueError("the engine has no room for arm embeddings (n_features too small)")
    index = {a: i for i, a in enumerate(model.arm_ids)}
    rows = np.array([index.get(a, -1) for a in catalog.arm_ids], dtype=np.int64)
    known = rows >= 0
    if not known.any():
        raise ValueError(
            f"the CF model shares no strategy id with catalog {catalog.name!r}: "
            f"model arms look like {list(model.arm_ids[:3])}"
        )
    factors = np.zeros((catalog.n_arms, model.factors))
    factors[known] = model.arm_factors[rows[known]]
    if not known.all():
        coef = attribute_regression(catalog.attributes[known], factors[known])
        factors[~known] = catalog.attributes[~known] @ coef
    rotation = np.eye(model.factors)
    if model.factors > room:
        # keep the directions along which the arms differ most; the scores lose the least
        _, _, vt = np.linalg.svd(factors, full_matrices=False)
        rotation = vt[:room].T
        factors = factors @ rotation
    return ArmSpace(factors=factors, rotation=rotation, imputed=~known)
