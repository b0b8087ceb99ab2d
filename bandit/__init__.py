"""attune's decision core: catalog, features, policies, kernels, user state, directives, engine.

``bandit`` imports nothing else of attune's; everything else builds on it.
"""

from bandit.catalog import Catalog, CatalogError
from bandit.config import EngineConfig
from bandit.context import ContextSpec, DeclaredFeature
from bandit.directives import DirectiveCompiler, Directives
from bandit.engine import Engine, Selection
from bandit.explain import Reason
from bandit.features import FEATURE_NAMES, N_FEATURES, featurize
from bandit.policies import POLICIES, Policy, make_policy
from bandit.random import check_random_state
from bandit.records import Decision, DecisionRequest, Feedback
from bandit.state import SchemaError, UserState

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "POLICIES",
    "Catalog",
    "CatalogError",
    "ContextSpec",
    "Decision",
    "DecisionRequest",
    "DeclaredFeature",
    "DirectiveCompiler",
    "Directives",
    "Engine",
    "EngineConfig",
    "Feedback",
    "Policy",
    "Reason",
    "SchemaError",
    "Selection",
    "UserState",
    "check_random_state",
    "featurize",
    "make_policy",
]
