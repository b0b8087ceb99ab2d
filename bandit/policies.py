"""Selection policies: one contract, a registry, and ``make_policy(name, **params)``.

Every policy turns the same hybrid linear reward model (a Gaussian posterior per user plus a
shared request x arm interaction term) into an action distribution over the allowed arms. They
differ only in how:

========== ===================================================================================
uniform    every allowed arm equally likely (the random baseline)
egreedy    the best mean arm with 1 - epsilon, otherwise uniform
softmax    probabilities proportional to exp(mean / temperature)
squarecb   inverse-gap weighting, p_a = 1 / (K + gamma * gap_a) (Foster & Rakhlin, 2020)
linucb     the arm with the highest mean + alpha * posterior standard deviation
lints      Thompson sampling, its distribution estimated by Monte Carlo (see ``LinTS``)
========== ===================================================================================

On top of each, the exploration floor spreads ``floor`` of the probability mass evenly over
the allowed arms. Every policy learns the same way (the posterior update is Bayesian linear
regression), so switching policy never discards what was learned.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bandit import _kernels as K


class Policy:
    """Base class: validates parameters once; subclasses declare their kernel and parameter.

    Subclasses set ``name``, ``_code`` and ``_defaults`` and may override ``_check``.
    """

    name: ClassVar[str]
    _code: ClassVar[int]
    _defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self._defaults))
        if unknown:
            allowed = ", ".join(self._defaults) or "none"
            raise TypeError(f"{self.name}: unknown parameter {unknown[0]!r}; allowed: {allowed}")
        merged = {**self._defaults, **params}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{self.name}.{key}: expected a number, got {value!r}")
        self.params: dict[str, float] = {k: float(v) for k, v in merged.items()}
        self._check()

    def _check(self) -> None:
        """Hook: raise ``ValueError`` naming the parameter and its allowed range."""

    def _kernel_param(self) -> float:
        """Hook: the one scalar the kernel needs."""
        return 0.0

    def _sample_counts(self) -> tuple[int, int]:
        """Hook: (block, maximum) Monte-Carlo draws; only Thompson sampling draws any."""
        return 1, 1

    @property
    def code(self) -> int:
        return self._code

    def kernel_args(self) -> tuple[int, float, int, int]:
        n_min, n_max = self._sample_counts()
        return self._code, self._kernel_param(), n_min, n_max

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def _range(self, key: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
        v = self.params[key]
        ok = (v > lo if open_lo else v >= lo) and v <= hi
        if not ok:
            bracket = "(" if open_lo else "["
            raise ValueError(f"{self.name}.{key} must be in {bracket}{lo:g}, {hi:g}], got {v:g}")


class Uniform(Policy):
    name = "uniform"
    _code = K.POLICY_UNIFORM


class EpsilonGreedy(Policy):
    name = "egreedy"
    _code = K.POLICY_EGREEDY
    _defaults: ClassVar[dict[str, float]] = {"epsilon": 0.1}

    def _check(self) -> None:
        self._range("epsilon", 0.0, 1.0)

    def _kernel_param(self) -> float:
        return self.params["epsilon"]


class Softmax(Policy):
    name = "softmax"
    _code = K.POLICY_SOFTMAX
    _defaults: ClassVar[dict[str, float]] = {"temperature": 0.05}

    def _check(self) -> None:
        self._range("temperature", 0.0, 100.0, open_lo=True)

    def _kernel_param(self) -> float:
        return self.params["temperature"]


class SquareCB(Policy):
    name = "squarecb"
    _code = K.POLICY_SQUARECB
    _defaults: ClassVar[dict[str, float]] = {"gamma": 100.0}

    def _check(self) -> None:
        self._range("gamma", 0.0, 1e9)

    def _kernel_param(self) -> float:
        return self.params["gamma"]


class LinUCB(Policy):
    name = "linucb"
    _code = K.POLICY_LINUCB
    _defaults: ClassVar[dict[str, float]] = {"alpha": 0.5}

    def _check(self) -> None:
        self._range("alpha", 0.0, 100.0)

    def _kernel_param(self) -> float:
        return self.params["alpha"]


class LinTS(Policy):
    """Linear Thompson sampling with a Monte-Carlo action distribution.

    Textbook TS draws one ``theta`` and plays its best arm, so its propensity is an integral
    with no closed form. attune instead draws posterior samples in blocks of ``block`` (up to
    ``max_samples``), takes the empirical distribution of their best arms, and draws the arm
    from that distribution. The logged propensity is therefore *exactly* the probability with
    which the arm was chosen; it differs from textbook TS's probability by Monte-Carlo error,
    standard deviation ``sqrt(p (1 - p) / S)`` for ``S`` draws: at most 0.0625 at S = 64 and
    0.125 at S = 16. Sampling stops early (see ``_kernels.select.ts_distribution``) when the draws
    agree, which a trained posterior usually does.
    """

    name = "lints"
    _code = K.POLICY_LINTS
    _defaults: ClassVar[dict[str, float]] = {"scale": 0.3, "block": 16, "max_samples": 64}

    def _check(self) -> None:
        self._range("scale", 0.0, 100.0)
        self._range("block", 1, 4096)
        self._range("max_samples", 1, 4096)
        block, total = self.params["block"], self.params["max_samples"]
        if block != int(block) or total != int(total) or total % block:
            raise ValueError(
                f"lints.max_samples must be a whole multiple of lints.block, "
                f"got {total:g} and {block:g}"
            )

    def _kernel_param(self) -> float:
        return self.params["scale"]

    def _sample_counts(self) -> tuple[int, int]:
        return int(self.params["block"]), int(self.params["max_samples"])


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Uniform, EpsilonGreedy, Softmax, SquareCB, LinUCB, LinTS)
}


def make_policy(name: str | Policy, **params: Any) -> Policy:
    """Build a registered policy by name.

    >>> make_policy("linucb", alpha=1.0)
    LinUCB(alpha=1)
    """
    if isinstance(name, Policy):
        if params:
            raise TypeError("pass parameters to the policy's constructor, not with an instance")
        return name
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown policy {name!r}; allowed: {', '.join(sorted(POLICIES))}"
        ) from None
    return cls(**params)
