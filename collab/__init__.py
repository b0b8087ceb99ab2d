"""Collaborative filtering for attune: interaction matrices, implicit ALS/BPR, warm start.

``collab`` imports only ``bandit``. It turns a polars table of interactions into a versioned
``CFModel`` (``fit``) and puts that model into an engine (``warm_start``): arm embeddings,
priors for known users, a cluster prior for new users.
"""

from collab.arms import ArmSpace, arm_space, attribute_regression
from collab.fit import TRAINERS, fit, make_trainer
from collab.matrix import Interactions, NotEnoughData, Weighting, build_matrix
from collab.model import MODEL_SCHEMA_VERSION, CatalogMismatch, CFModel, adapter_id, check_catalog
from collab.refine import refine_cluster_priors
from collab.warm import ClusterPrior, PriorMap, Priors, warm_start
from collab.watch import ModelWatcher, latest_version, load_latest, model_path, publish

__all__ = [
    "MODEL_SCHEMA_VERSION",
    "TRAINERS",
    "ArmSpace",
    "CFModel",
    "CatalogMismatch",
    "ClusterPrior",
    "Interactions",
    "ModelWatcher",
    "NotEnoughData",
    "PriorMap",
    "Priors",
    "Weighting",
    "adapter_id",
    "arm_space",
    "attribute_regression",
    "build_matrix",
    "check_catalog",
    "fit",
    "latest_version",
    "load_latest",
    "make_trainer",
    "model_path",
    "publish",
    "refine_cluster_priors",
    "warm_start",
]
