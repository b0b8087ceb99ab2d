"""``EngineConfig``: an engine's hyperparameters, in one validated record.

The one list of them: ``Engine`` takes an ``EngineConfig`` (its keyword parameters are the
record's fields), a saved engine stores one, and a settings file becomes one through
``from_dict``; ``dataclasses.fields(EngineConfig)`` names them. The numba kernels'
compilation flags are not hyperparameters; they live in ``bandit._config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from bandit.context import ContextSpec
from bandit.policies import Policy, make_policy

_NUMBER = (int, float, np.integer, np.floating)


@dataclass(frozen=True)
class EngineConfig:
    """The hyperparameters of an ``Engine``, validated on construction.

    Parameters
    ----------
    policy : str
        A registered policy name (see ``bandit.policies``).
    policy_params : mapping
        Parameters for ``make_policy``; None means none.
    n_features : int >= 1
        Dimension of the arm feature vectors. An engine needs at least ``1 + number of levels``
        of its catalog; the rest holds CF item embeddings once ``set_arm_embeddings`` is called.
    prior_precision : float > 0
        Precision of a new user's prior (in units of the noise precision) until their tenant has
        estimated how far its users deviate from the population (``empirical_prior``). The
        default, 25, assumes a deviation of a fifth of the reward noise: a user starts as the
        population predicts and departs from it as their feedback shows they differ (a wide
        start would let every user absorb tastes the whole population shares, out of reach of
        new users).
    forgetting : float in (0, 1]
        Each update first scales the user's evidence by this factor, so old feedback fades and
        preferences can drift; 1 keeps everything.
    floor : float in [0, 1)
        Probability mass spread evenly over the allowed arms of every decision.
    noise_sd : float > 0
        Standard deviation of a reward around the model's prediction (a [0, 1] reward: at most
        0.5). It weighs the shared model's updates and scales the empirical user prior.
    shared_prior_sd : float > 0
        Prior standard deviation of each weight of the shared (population) model: an arm's
        shared term sums one weight per active attribute column and context column, so small
        weights already allow sizeable effects (and a wide prior makes Thompson sampling
        explore for long).
    empirical_prior : bool
        Estimate how far users deviate from the population's prediction (empirical Bayes, from
        pairs of one user's residuals) and start new users with that width; ``False`` keeps
        ``prior_precision``.
    context : ContextSpec
        The request's context columns: message features, the product's declared features and
        the overflow block for undeclared keys (see ``bandit.context``).

    Examples
    --------
    >>> config = EngineConfig(policy="linucb", floor=0.1)
    >>> config.floor, config.make_policy()
    (0.1, LinUCB(alpha=0.5))
    >>> EngineConfig.from_dict(config.to_dict()) == config
    True
    >>> EngineConfig(floor=1.0)
    Traceback (most recent call last):
    ...
    ValueError: floor must be in [0, 1), got 1.0
    """

    policy: str = "lints"
    policy_params: Mapping[str, Any] = field(default_factory=dict)
    n_features: int = 32
    prior_precision: float = 25.0
    forgetting: float = 0.998
    floor: float = 0.05
    noise_sd: float = 0.5
    shared_prior_sd: float = 0.05
    empirical_prior: bool = True
    context: ContextSpec = field(default_factory=ContextSpec)

    def __post_init__(self) -> None:
        self._check_policy()
        self._check_numbers()
        self._check_ranges()

    def _check_policy(self) -> None:
        params = {} if self.policy_params is None else self.policy_params
        if not isinstance(self.policy, str):
            raise TypeError(f"policy must be a registered policy name, got {self.policy!r}")
        if not isinstance(params, Mapping):
            raise TypeError(f"policy_params must be a mapping, got {params!r}")
        object.__setattr__(self, "policy_params", MappingProxyType(dict(params)))
        self.make_policy()  # raises naming the policy or parameter and what is allowed

    def _check_numbers(self) -> None:
        n = self.n_features
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise TypeError(f"n_features must be an integer, got {n!r}")
        object.__setattr__(self, "n_features", int(n))
        for f in dataclasses.fields(self):
            if f.type != "float":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                raise TypeError(f"{f.name} must be a number, got {value!r}")
            object.__setattr__(self, f.name, float(value))

    def _check_ranges(self) -> None:
        if self.n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {self.n_features}")
        if not self.prior_precision > 0:
            raise ValueError(f"prior_precision must be > 0, got {self.prior_precision}")
        if not 0.0 < self.forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {self.forgetting}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if not 0.0 < self.noise_sd <= 10.0:
            raise ValueError(f"noise_sd must be in (0, 10], got {self.noise_sd}")
        if not 0.0 < self.shared_prior_sd <= 100.0:
            raise ValueError(f"shared_prior_sd must be in (0, 100], got {self.shared_prior_sd}")
        if not isinstance(self.empirical_prior, bool):
            raise TypeError(f"empirical_prior must be true or false, got {self.empirical_prior!r}")
        if isinstance(self.context, Mapping):
            object.__setattr__(self, "context", ContextSpec.from_dict(self.context))
        if not isinstance(self.context, ContextSpec):
            raise TypeError(f"context must be a ContextSpec, got {self.context!r}")

    def make_policy(self) -> Policy:
        """A new policy of this config's name and parameters."""
        return make_policy(self.policy, **self.policy_params)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (``policy_params`` a new dict), ready for JSON or TOML."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["policy_params"] = dict(self.policy_params)
        out["context"] = self.context.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineConfig:
        """The config of a mapping of field names; missing fields take their defaults.

        >>> EngineConfig.from_dict({"flor": 0.1})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown engine parameter 'flor'; allowed: policy, policy_params, ...
        """
        problem = unknown_parameter(data)
        if problem:
            raise ValueError(problem)
        return cls(**data)

    def __reduce__(self) -> tuple[Any, ...]:
        # ``policy_params`` is a read-only view, which pickle and deepcopy cannot copy.
        return (type(self).from_dict, (self.to_dict(),))


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EngineConfig))


def unknown_parameter(names: Mapping[str, Any]) -> str | None:
    """The message naming the first key of ``names`` that is no field, or None."""
    unknown = sorted(set(names) - set(FIELDS))
    if not unknown:
        return None
    return f"unknown engine parameter {unknown[0]!r}; allowed: {', '.join(FIELDS)}"


def configure(
    config: EngineConfig | None, params: Mapping[str, Any]
) -> tuple[EngineConfig, Policy]:
    """The config ``Engine(config=config, **params)`` runs with, and its policy.

    ``params`` override fields of ``config`` (the defaults when None). A ``Policy`` instance
    passed as ``params["policy"]`` is used as is, its name and parameters going into the config.
    """
    problem = unknown_parameter(params)
    if problem:
        raise TypeError(problem)
    params = dict(params)
    instance = None
    if isinstance(params.get("policy"), Policy):
        instance = make_policy(params["policy"], **(params.get("policy_params") or {}))
        params.update(policy=instance.name, policy_params=instance.params)
    config = dataclasses.replace(config or EngineConfig(), **params)
    return config, instance or config.make_policy()
